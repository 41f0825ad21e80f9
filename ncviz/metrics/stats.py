"""Streaming sufficient statistics for classification collapse.

Two passes over the data, each a set of sums that merge by addition (shards, GPUs, batches):

* :class:`ClassMeanStats` (pass 1): n_c and Σ_{i∈c} h_i, giving the class means μ_c.
* :class:`ScatterStats` (pass 2, around the pass-1 means): Σ_i (h_i − μ_{y_i})(h_i − μ_{y_i})ᵀ,
  Σ_{i∈c} ‖h_i − μ_c‖², and per-class counts of classifier hits, nearest-class-centre (NCC) hits
  and classifier/NCC agreement.

Subtracting the exact means in a second pass (rather than E[hhᵀ] − μμᵀ from one pass) keeps the
within-class scatter accurate — and non-negative — when features have collapsed to within a few
ulps of their means. Everything is float64 whatever the input dtype; memory is O(C·d + d²).
:class:`CollapseStatistics` wraps both passes behind one ``update``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import torch

from ncviz.errors import InputError
from ncviz.metrics.decisions import AffineDecisions
from ncviz.metrics.inputs import ArrayLike, class_indices, features_matrix, require_finite
from ncviz.metrics.threads import run_in_slots, slot_count

# Rows per chunk of float64 work (chunk × d float64 ≈ 8 MB, cache-sized: measured fastest at
# 2,048 rows for d = 512). Input keeps its dtype; each chunk is upcast on its own, so the
# whole array is never copied to float64.
_CHUNK_ENTRIES = 2**20
# on an accelerator, memory is plentiful and every chunk costs kernel launches and host syncs
_DEVICE_CHUNK_ENTRIES = 2**25
# width of the column blocks of the symmetric scatter update (see add_upper_gram_)
_GRAM_BLOCK = 128


def _class_counts(
    y: torch.Tensor, num_classes: int, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-class counts of ``y`` (where ``mask``), without the host sync of ``torch.bincount``."""
    ones = torch.ones_like(y) if mask is None else mask.to(torch.int64)
    return torch.zeros(num_classes, dtype=torch.int64, device=y.device).index_add_(0, y, ones)


def sums_finite(*sums: torch.Tensor) -> bool:
    """True when every sum is finite: NaN/Inf in any feature of a pass reaches its sums, so one
    check at the end of the pass replaces a check (and a host sync) per batch."""
    return all(bool(torch.isfinite(t).all()) for t in sums)


def chunk_slices(num_rows: int, dim: int, device: torch.device | None = None) -> list[slice]:
    """Row slices of at most ``_CHUNK_ENTRIES / dim`` rows (CPU) covering 0..num_rows."""
    on_cpu = device is None or device.type == "cpu"
    step = max(1, (_CHUNK_ENTRIES if on_cpu else _DEVICE_CHUNK_ENTRIES) // max(1, dim))
    return [slice(start, min(num_rows, start + step)) for start in range(0, num_rows, step)]


def _float64_buffer(slices: list[slice], h: torch.Tensor) -> torch.Tensor | None:
    """A float64 buffer of one chunk's shape when ``h`` must be upcast, else None."""
    if h.dtype == torch.float64:
        return None
    return torch.empty(slices[0].stop, h.shape[1], dtype=torch.float64, device=h.device)


def _gram_edges(dim: int) -> list[int]:
    blocks = max(1, min(8, round(dim / _GRAM_BLOCK)))
    return [round(i * dim / blocks) for i in range(blocks + 1)]


def add_upper_gram_(accumulator: torch.Tensor, rows: torch.Tensor) -> None:
    """accumulator += rowsᵀ rows on and above the diagonal only (blocks of columns).

    The Gram matrix is symmetric, so the blocks below the diagonal are never formed: with four
    column blocks that is 10 of 16 block products (0.63 of the flops). Read the result through
    :func:`symmetric_from_upper`.

    >>> import torch
    >>> r = torch.randn(5, 300, dtype=torch.float64)
    >>> acc = torch.zeros(300, 300, dtype=torch.float64)
    >>> add_upper_gram_(acc, r)
    >>> torch.allclose(symmetric_from_upper(acc), r.T @ r)
    True
    """
    edges = _gram_edges(rows.shape[1])
    for lo, hi in itertools.pairwise(edges):
        accumulator[lo:hi, lo:].addmm_(rows[:, lo:hi].T, rows[:, lo:])


def symmetric_from_upper(accumulator: torch.Tensor) -> torch.Tensor:
    """The symmetric matrix whose upper triangle (diagonal included) is ``accumulator``'s."""
    return accumulator.triu() + accumulator.triu(1).T


@dataclass
class ClassMeanStats:
    """Pass-1 statistics: per-class counts (int64) and feature sums (float64)."""

    counts: torch.Tensor
    sums: torch.Tensor

    @classmethod
    def empty(
        cls, num_classes: int, dim: int, device: torch.device | str = "cpu"
    ) -> ClassMeanStats:
        if num_classes < 1 or dim < 1:
            raise InputError(f"need num_classes ≥ 1 and dim ≥ 1, got {num_classes} and {dim}.")
        return cls(
            counts=torch.zeros(num_classes, dtype=torch.int64, device=device),
            sums=torch.zeros(num_classes, dim, dtype=torch.float64, device=device),
        )

    @property
    def num_classes(self) -> int:
        return int(self.counts.shape[0])

    @property
    def dim(self) -> int:
        return int(self.sums.shape[1])

    def update(
        self,
        features: ArrayLike,
        labels: ArrayLike,
        *,
        labels_checked: bool = False,
        check_finite: bool = True,
    ) -> None:
        """Add a batch: ``features`` N×d (any float dtype), ``labels`` N ints in 0..C-1.

        ``labels_checked``: the labels are already an int64 tensor of valid class indices on this
        device (a caller feeding many layers checks them once). ``check_finite=False`` leaves
        the NaN/Inf check to one :func:`sums_finite` call at the end of the pass (no host sync
        per batch on a GPU)."""
        device = self.sums.device
        h = features_matrix(
            features, dim=self.dim, device=device, check_finite=False, keep_dtype=True
        )
        y = (
            labels
            if labels_checked
            else class_indices(labels, h.shape[0], self.num_classes, device)
        )
        slices = chunk_slices(h.shape[0], self.dim, device)
        # chunk i adds into partial sum i mod S (the first is self.sums), on parallel workers
        num_slots = slot_count(
            len(slices), 8 * (self.sums.numel() + slices[0].stop * self.dim), device
        )
        sums = [self.sums, *(torch.zeros_like(self.sums) for _ in range(num_slots - 1))]
        buffers = [_float64_buffer(slices, h) for _ in range(num_slots)]

        def add(slot: int, rows: slice) -> None:
            buffer = buffers[slot]
            chunk = h[rows] if buffer is None else buffer[: rows.stop - rows.start]
            if buffer is not None:
                chunk.copy_(h[rows])  # upcast into one reused buffer (no page faults)
            if check_finite:  # NaN/Inf anywhere reaches a row sum
                require_finite(h, torch.isfinite(chunk.sum(dim=1)).all())
            sums[slot].index_add_(0, y[rows], chunk)

        # memory-bound: an element costs about as long as 32 flops of a GEMM
        run_in_slots(slices, num_slots, add, flops=32.0 * h.shape[0] * self.dim)
        for extra in sums[1:]:  # in slot order: the same sum on any number of threads
            self.sums += extra
        self.counts += _class_counts(y, self.num_classes)

    def merge(self, other: ClassMeanStats) -> ClassMeanStats:
        """Add another shard's statistics in place; returns self."""
        if other.sums.shape != self.sums.shape:
            raise InputError(
                f"cannot merge statistics of shape {tuple(other.sums.shape)} into "
                f"{tuple(self.sums.shape)}; shards must use the same classes and layer."
            )
        self.counts += other.counts.to(self.counts.device)
        self.sums += other.sums.to(self.sums.device)
        return self

    def means(self) -> torch.Tensor:
        """Class means μ_c (C×d); rows of empty classes are zero."""
        return self.sums / self.counts.clamp(min=1).to(torch.float64)[:, None]


@dataclass
class Classifier:
    """A linear classifier h ↦ argmax_k (w_kᵀh + b_k) whose rows are matched to classes.

    ``weight`` is K×d (K ≥ C allowed: a model may have rows for classes absent from the data);
    ``class_rows[c]`` is the row of W that belongs to class c. Predictions are made over all K
    rows, as the model makes them; a row that belongs to no class counts as a miss.
    """

    weight: torch.Tensor
    bias: torch.Tensor | None
    class_rows: torch.Tensor

    @classmethod
    def build(
        cls,
        weight: ArrayLike,
        bias: ArrayLike | None,
        num_classes: int,
        dim: int,
        class_rows: ArrayLike | None = None,
        device: torch.device | str = "cpu",
    ) -> Classifier:
        w = features_matrix(weight, name="classifier weight W", device=device)
        if w.shape[1] != dim:
            raise InputError(
                f"classifier weight W has shape {tuple(w.shape)} but features have dimension "
                f"{dim}; W must be (classes × {dim}) — is it the weight of the layer that "
                "reads these features (not its transpose)?"
            )
        b = None
        if bias is not None:
            b = features_matrix(
                torch.as_tensor(bias).reshape(1, -1), name="classifier bias b", device=device
            )[0]
            if b.shape[0] != w.shape[0]:
                raise InputError(
                    f"classifier bias has {b.shape[0]} entries but W has {w.shape[0]} rows; "
                    "pass the bias of the same layer."
                )
        if class_rows is None:
            if w.shape[0] != num_classes:
                raise InputError(
                    f"classifier weight W has {w.shape[0]} rows but the data have {num_classes} "
                    "classes; pass W with one row per class (or say which row is which class)."
                )
            rows = torch.arange(num_classes, device=device)
        else:
            rows = torch.as_tensor(class_rows, dtype=torch.int64, device=device)
            if rows.shape != (num_classes,) or int(rows.min()) < 0 or int(rows.max()) >= len(w):
                raise InputError(
                    f"class_rows must give one row index of W (0..{len(w) - 1}) per class "
                    f"({num_classes} classes)."
                )
        return cls(weight=w, bias=b, class_rows=rows)

    def class_weight(self) -> torch.Tensor:
        """Rows of W aligned with the classes (C×d); W itself when its rows are the classes."""
        rows = self.class_rows
        if len(rows) == len(self.weight) and torch.equal(
            rows, torch.arange(len(rows), device=rows.device)
        ):
            return self.weight
        return self.weight[rows]

    def row_classes(self) -> torch.Tensor:
        """Class index of each row of W; −1 for rows that belong to no class."""
        device = self.weight.device
        row_to_class = torch.full((len(self.weight),), -1, dtype=torch.int64, device=device)
        row_to_class[self.class_rows] = torch.arange(len(self.class_rows), device=device)
        return row_to_class


@dataclass
class CompactScatter:
    """What the metrics need of a finished within-class scatter S, in O(C·d) numbers.

    NC1 reads S only along directions v in the span of the centred class means (vᵀSv for the
    eigenvectors of Σ_B), and the feature spectrum is fixed once the passes end. So a saved
    state may keep, instead of the d×d matrix: ``basis`` (k×d, orthonormal rows spanning the
    class means centred at the sample mean, k ≤ min(C, d); none when C − 1 > d, where NC1 is
    not reported), ``projected`` = B S Bᵀ (k×k), and ``spectrum`` (the ``sv_features`` values).
    Then vᵀSv = (Bv)ᵀ (B S Bᵀ) (Bv) for every v in that span, to rounding.

    >>> import torch
    >>> s = torch.randn(6, 6, dtype=torch.float64); s = s @ s.T
    >>> basis = torch.linalg.qr(torch.randn(6, 2, dtype=torch.float64))[0].T
    >>> compact = CompactScatter(basis, basis @ s @ basis.T, torch.zeros(0))
    >>> v = torch.tensor([[0.3, -1.2]], dtype=torch.float64) @ basis  # in the span
    >>> torch.allclose(compact.along(v), ((v @ s) * v).sum(dim=1))
    True
    """

    basis: torch.Tensor
    projected: torch.Tensor
    spectrum: torch.Tensor

    def along(self, directions: torch.Tensor) -> torch.Tensor:
        """v_kᵀ S v_k for each row v_k of ``directions`` (rows in the span of ``basis``)."""
        coords = directions @ self.basis.T
        return ((coords @ self.projected) * coords).sum(dim=1)


@dataclass
class ScatterStats:
    """Pass-2 statistics around fixed class means ``centers`` for the classes in ``kept``.

    Samples whose class is not kept (``min_count`` filtering) are skipped entirely. ``scatter``
    accumulates only its upper triangle (see :func:`add_upper_gram_`); read it through
    :meth:`within_scatter`. Nearest-centre and classifier decisions are made by
    :class:`~ncviz.metrics.decisions.AffineDecisions`: mostly in bfloat16/float32, always equal to
    the float64 decision. Statistics read from a compact saved state have ``scatter`` None and
    ``compact`` set (:class:`CompactScatter`); they finish but take no more data.
    """

    centers: torch.Tensor
    kept: torch.Tensor
    classifier: Classifier | None
    scatter: torch.Tensor | None
    sq_dist: torch.Tensor
    ncc_hits: torch.Tensor
    classifier_hits: torch.Tensor
    agreement: torch.Tensor
    compact: CompactScatter | None = None
    all_kept: bool = field(init=False)
    _decisions: AffineDecisions | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        self.all_kept = bool(self.kept.all())

    def within_scatter(self) -> torch.Tensor:
        """Σ_i (h_i − μ_{y_i})(h_i − μ_{y_i})ᵀ over the kept samples (d×d, symmetric)."""
        return symmetric_from_upper(self._accumulator())

    def _accumulator(self) -> torch.Tensor:
        if self.scatter is None:
            raise InputError(
                "these statistics were read from a compact saved state (no d×d scatter); they "
                "give every metric but take no more data and cannot be merged."
            )
        return self.scatter

    def release_workspace(self) -> None:
        """Drop the decision matrices (≈ 3 × (C + K) × d numbers); rebuilt if needed again."""
        self._decisions = None

    def decisions(self) -> AffineDecisions:
        """The nearest-class-centre group (kept classes) and the classifier group (all rows)."""
        if self._decisions is None:
            kept_centers = self.centers if self.all_kept else self.centers[self.kept]
            groups = [(kept_centers, -(kept_centers * kept_centers).sum(dim=1), 2.0)]
            if self.classifier is not None:
                weight, bias = self.classifier.weight, self.classifier.bias
                offsets = torch.zeros_like(weight[:, 0]) if bias is None else bias
                groups.append((weight, offsets))
            self._decisions = AffineDecisions(groups, kept_centers.mean(dim=0))
            self._ncc_classes = torch.nonzero(self.kept).flatten()
            if self.classifier is not None:
                self._row_classes = self.classifier.row_classes()
        return self._decisions

    @classmethod
    def empty(
        cls, centers: torch.Tensor, kept: torch.Tensor, classifier: Classifier | None = None
    ) -> ScatterStats:
        num_classes, dim = centers.shape
        device = centers.device

        def zeros_int() -> torch.Tensor:
            return torch.zeros(num_classes, dtype=torch.int64, device=device)

        return cls(
            centers=centers,
            kept=kept,
            classifier=classifier,
            scatter=torch.zeros(dim, dim, dtype=torch.float64, device=device),
            sq_dist=torch.zeros(num_classes, dtype=torch.float64, device=device),
            ncc_hits=zeros_int(),
            classifier_hits=zeros_int(),
            agreement=zeros_int(),
        )

    @property
    def num_classes(self) -> int:
        return int(self.centers.shape[0])

    def update(
        self,
        features: ArrayLike,
        labels: ArrayLike,
        *,
        labels_checked: bool = False,
        check_finite: bool = True,
    ) -> None:
        """Add a batch of the same data as pass 1 (any order, any batching); options as for
        :meth:`ClassMeanStats.update`."""
        device = self.centers.device
        dim = self.centers.shape[1]
        h = features_matrix(features, dim=dim, device=device, check_finite=False, keep_dtype=True)
        y = (
            labels
            if labels_checked
            else class_indices(labels, h.shape[0], self.num_classes, device)
        )
        self._accumulator()
        if not self.all_kept:
            in_kept = self.kept[y]
            h, y = h[in_kept], y[in_kept]
        if h.shape[0] == 0:
            return
        decisions = self.decisions()  # built once, shared by the workers
        slices = chunk_slices(h.shape[0], dim, device)
        # chunk i adds into partial sums i mod S (the first are this object's), on parallel
        # workers; each slot has its own residual buffer
        num_slots = slot_count(
            len(slices), 8 * (dim * dim + 4 * self.num_classes + slices[0].stop * dim), device
        )
        sums = [self._sums(), *(self._sums(empty=True) for _ in range(num_slots - 1))]
        buffers = [
            torch.empty(slices[0].stop, dim, dtype=torch.float64, device=device)
            for _ in range(num_slots)
        ]

        def add(slot: int, rows: slice) -> None:
            residual = buffers[slot][: rows.stop - rows.start]
            self._add_chunk(h[rows], y[rows], residual, check_finite, sums[slot])

        flops = h.shape[0] * dim * (dim + 2 * decisions.num_rows)
        run_in_slots(slices, num_slots, add, flops=flops)
        for extra in sums[1:]:  # in slot order: the same sums on any number of threads
            for mine, theirs in zip(sums[0], extra):
                mine += theirs

    def _sums(self, empty: bool = False) -> tuple[torch.Tensor, ...]:
        """The pass's sums (scatter, sq_dist, ncc_hits, classifier_hits, agreement), or zeros
        shaped like them (a partial sum of a parallel pass)."""
        own = (
            self._accumulator(),
            self.sq_dist,
            self.ncc_hits,
            self.classifier_hits,
            self.agreement,
        )
        return tuple(torch.zeros_like(t) for t in own) if empty else own

    def _add_chunk(
        self,
        h: torch.Tensor,
        y: torch.Tensor,
        residual: torch.Tensor,
        check_finite: bool,
        sums: tuple[torch.Tensor, ...],
    ) -> None:
        scatter, sq_dist_sum, ncc_hits, classifier_hits, agreement = sums
        negative_residual = torch.index_select(self.centers, 0, y, out=residual).sub_(h)  # μ_y − h
        # ‖h − μ_y‖² per row: a reduction, without vecdot's n×d product
        sq_dist = torch.linalg.vector_norm(negative_residual, dim=1).square_()
        if check_finite:
            require_finite(h, torch.isfinite(sq_dist).all())
        add_upper_gram_(scatter, negative_residual)
        sq_dist_sum.index_add_(0, y, sq_dist)

        decided = self.decisions().decide(h)
        ncc = self._ncc_classes[decided[0]]
        ncc_hits += _class_counts(y, self.num_classes, ncc == y)
        if self.classifier is not None:
            pred = self._row_classes[decided[1]]
            classifier_hits += _class_counts(y, self.num_classes, pred == y)
            agreement += _class_counts(y, self.num_classes, pred == ncc)

    def merge(self, other: ScatterStats) -> ScatterStats:
        """Add another shard's pass-2 statistics (computed around the same means); returns self."""
        self._accumulator(), other._accumulator()
        if not torch.equal(other.centers.to(self.centers.device), self.centers) or not torch.equal(
            other.kept.to(self.kept.device), self.kept
        ):
            raise InputError(
                "cannot merge second-pass statistics computed around different class means; "
                "merge the first-pass statistics of all shards before starting the second pass."
            )
        for name in ("scatter", "sq_dist", "ncc_hits", "classifier_hits", "agreement"):
            mine = getattr(self, name)
            mine += getattr(other, name).to(mine.device)
        return self
