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

from dataclasses import dataclass, field

import torch

from ncviz.errors import InputError
from ncviz.metrics.inputs import ArrayLike, class_indices, features_matrix, require_finite

# Rows per chunk when an N×C distance or logit block is formed, so that memory stays bounded
# (chunk × C float64 entries ≤ 2**22 ≈ 32 MB) even with vocabulary-sized C.
_BLOCK_ENTRIES = 2**22


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


def _chunk_rows(num_cols: int) -> int:
    """Rows per chunk so that a chunk × num_cols float64 block stays under _BLOCK_ENTRIES."""
    return max(1, _BLOCK_ENTRIES // max(1, num_cols))


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
        h = features_matrix(features, dim=self.dim, device=self.sums.device, check_finite=False)
        y = (
            labels
            if labels_checked
            else class_indices(labels, h.shape[0], self.num_classes, self.sums.device)
        )
        batch_sums = torch.zeros_like(self.sums).index_add_(0, y, h)
        if check_finite:  # NaN/Inf anywhere reaches a sum
            require_finite(h, torch.isfinite(batch_sums).all())
        self.counts += _class_counts(y, self.num_classes)
        self.sums += batch_sums

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
        """Rows of W aligned with the classes (C×d)."""
        return self.weight[self.class_rows]

    def predict(self, h: torch.Tensor) -> torch.Tensor:
        """Predicted class index per row of h; −1 where the winning row belongs to no class."""
        row_to_class = torch.full((len(self.weight),), -1, dtype=torch.int64, device=h.device)
        row_to_class[self.class_rows] = torch.arange(len(self.class_rows), device=h.device)
        if self.bias is None:
            logits = self.weight @ h.T  # K×n: the faster GEMM shape for n ≫ K
        else:
            logits = torch.addmm(self.bias[:, None], self.weight, h.T)
        return row_to_class[logits.argmax(dim=0)]


@dataclass
class ScatterStats:
    """Pass-2 statistics around fixed class means ``centers`` for the classes in ``kept``.

    Samples whose class is not kept (``min_count`` filtering) are skipped entirely.
    """

    centers: torch.Tensor
    kept: torch.Tensor
    classifier: Classifier | None
    scatter: torch.Tensor
    sq_dist: torch.Tensor
    ncc_hits: torch.Tensor
    classifier_hits: torch.Tensor
    agreement: torch.Tensor
    all_kept: bool = field(init=False)

    def __post_init__(self) -> None:
        self.all_kept = bool(self.kept.all())

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
        h = features_matrix(features, dim=self.centers.shape[1], device=device, check_finite=False)
        y = (
            labels
            if labels_checked
            else class_indices(labels, h.shape[0], self.num_classes, device)
        )
        if not self.all_kept:
            in_kept = self.kept[y]
            h, y = h[in_kept], y[in_kept]
        if h.shape[0] == 0:
            return
        negative_residual = self.centers.index_select(0, y).sub_(h)  # μ_y − h
        sq_dist = torch.linalg.vector_norm(negative_residual, dim=1) ** 2
        if check_finite:
            require_finite(h, torch.isfinite(sq_dist).all())
        self.scatter.addmm_(negative_residual.T, negative_residual)
        self.sq_dist.index_add_(0, y, sq_dist)

        kept_centers = self.centers[self.kept]
        kept_classes = torch.nonzero(self.kept).flatten()
        center_sq_norms = (kept_centers * kept_centers).sum(dim=1)
        step = _chunk_rows(
            len(kept_centers) + (0 if self.classifier is None else len(self.classifier.weight))
        )
        for start in range(0, h.shape[0], step):
            hb, yb = h[start : start + step], y[start : start + step]
            # argmin_c ‖h − μ_c‖² = argmin_c (‖μ_c‖² − 2 μ_cᵀh); C×n is the faster GEMM shape
            scores = torch.addmm(center_sq_norms[:, None], kept_centers, hb.T, alpha=-2.0)
            ncc = kept_classes[scores.argmin(dim=0)]
            self.ncc_hits += _class_counts(yb, self.num_classes, ncc == yb)
            if self.classifier is not None:
                pred = self.classifier.predict(hb)
                self.classifier_hits += _class_counts(yb, self.num_classes, pred == yb)
                self.agreement += _class_counts(yb, self.num_classes, pred == ncc)

    def merge(self, other: ScatterStats) -> ScatterStats:
        """Add another shard's pass-2 statistics (computed around the same means); returns self."""
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
