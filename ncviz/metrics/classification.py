"""Classification collapse metrics (NC1–NC4, spectra, minority collapse) from streaming statistics.

Use :func:`collapse_metrics` for arrays in memory, or :class:`CollapseStatistics` to stream batches
(two passes; shards merge exactly). Both give the same numbers to ~1e-12. Definitions and sources of
every key are in docs/metrics.md; with Σ_W = (1/N)Σ_i (h_i − μ_{y_i})(h_i − μ_{y_i})ᵀ, M the centred
class means and Σ_B = (1/C) M Mᵀ:

* ``nc1`` = Tr(Σ_W Σ_B⁺)/C, Σ_B⁺ from at most min(C−1, d) eigenpairs above 1e-10·λ_max (Papyan
  et al. 2020); ``nc1_trace_ratio`` = Tr Σ_W / Tr Σ_B (Tirer et al. 2023)
* ``nc4`` = NCC/classifier mismatch rate; ``accuracy`` = classifier hit rate
* ``minority_cos`` = mean cos(w_k, w_k′) over minority pairs (Fang et al. 2021);
  ``accuracy_minority``/``accuracy_majority`` = classifier hit rate over those classes' samples
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np
import torch

from ncviz.errors import InputError
from ncviz.metrics.conventions import DEFAULT_CONVENTION, ConventionInputs, convention
from ncviz.metrics.geometry import geometry_metrics
from ncviz.metrics.inputs import ArrayLike, as_tensor
from ncviz.metrics.options import CollapseOptions
from ncviz.metrics.spectra import (
    covariance_singular_values,
    effective_rank,
    numerical_rank,
    rank_metric,
    singular_values,
)
from ncviz.metrics.stats import (
    Classifier,
    ClassMeanStats,
    CompactScatter,
    ScatterStats,
    sums_finite,
)
from ncviz.metrics.threads import caller_threads, run_tasks, solver_threads

NC1_EIGEN_RTOL = 1e-10
STATE_SECOND_PASS = ("scatter", "sq_dist", "ncc_hits", "classifier_hits", "agreement")
# a compact state keeps these instead of the d×d "scatter" (see CompactScatter)
COMPACT_FIELDS = ("scatter_basis", "scatter_projected", "feature_spectrum")


@dataclass
class CollapseResult:
    """Scalar metrics keyed as in docs/metrics.md plus the per-class arrays the plots need.

    ``classes[k]`` is the original label of class k (row k of every per-class array);
    ``dropped_classes`` were removed by ``min_count``; ``warnings`` say why a value is inf or
    NaN (identical class means, a zero classifier row).
    """

    metrics: dict[str, float]
    arrays: dict[str, np.ndarray]
    classes: np.ndarray
    dropped_classes: np.ndarray
    minority_classes: np.ndarray
    options: CollapseOptions = field(default_factory=CollapseOptions)
    warnings: list[str] = field(default_factory=list)
    # with ``groups=`` (environments, domains): each group's collapse and the cross-group
    # geometry (a :class:`ncviz.metrics.groups.GroupResult`)
    groups: Any = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def _label_name(classes: np.ndarray | None, index: int) -> str:
    return repr(classes[index].item()) if classes is not None else str(index)


def kept_classes(
    counts: torch.Tensor, min_count: int | None, classes: np.ndarray | None = None
) -> torch.Tensor:
    """Boolean mask of classes that enter the metrics; raises if the data cannot support them."""
    if len(counts) < 2:
        raise InputError(
            f"the labels hold {len(counts)} class; collapse metrics need at least 2 classes."
        )
    if min_count is None:
        small = torch.nonzero(counts < 2).flatten()
        if len(small):
            first = int(small[0])
            raise InputError(
                f"class {_label_name(classes, first)} has {int(counts[first])} sample(s) "
                f"({len(small)} class(es) have fewer than 2); every class needs at least 2 — "
                "add samples, or pass min_count=2 to drop rare classes."
            )
        return torch.ones_like(counts, dtype=torch.bool)
    kept = counts >= int(min_count)  # 1 keeps every class seen once (Linguistic Collapse)
    if int(kept.sum()) < 2:
        raise InputError(
            f"only {int(kept.sum())} class(es) have at least {min_count} samples; "
            "lower min_count or provide more data."
        )
    return kept


class CollapseStatistics:
    """Two-pass streaming statistics for every classification metric of docs/metrics.md.

    Example::

        stats = CollapseStatistics(num_classes=10, dim=512, weight=W, bias=b, device="cuda")
        for h, y in batches():            # pass 1: class counts and sums
            stats.update(h, y)
        stats.start_second_pass()         # freezes the class means
        for h, y in batches():            # pass 2: scatter around the means, NCC/classifier
            stats.update(h, y)
        result = stats.compute()          # CollapseResult; result.metrics["nc1"], …

    Shards (processes, GPUs) each run the same passes on disjoint data and ``merge`` their
    statistics after each pass; merged metrics equal single-process metrics. Labels must be class
    indices 0..C−1; ``class_rows[c]`` names the row of W that belongs to class c (default c).
    Memory is O(C·d + d²) float64, on ``device``.
    """

    def __init__(
        self,
        num_classes: int,
        dim: int,
        weight: ArrayLike | None = None,
        bias: ArrayLike | None = None,
        *,
        class_rows: ArrayLike | None = None,
        min_count: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        self.device = torch.device(device if device is not None else "cpu")
        self.first = ClassMeanStats.empty(num_classes, dim, self.device)
        self.classifier = None
        if weight is not None:
            self.classifier = Classifier.build(
                weight, bias, num_classes, dim, class_rows, self.device
            )
        elif bias is not None:
            raise InputError(
                "a classifier bias was given without its weight; pass both or neither."
            )
        self.min_count = min_count
        self.second: ScatterStats | None = None

    @property
    def pass_number(self) -> int:
        """1 while collecting class means, 2 after :meth:`start_second_pass`."""
        return 1 if self.second is None else 2

    def update(
        self,
        features: ArrayLike,
        labels: ArrayLike,
        *,
        labels_checked: bool = False,
        check_finite: bool = True,
    ) -> None:
        """Add a batch to the current pass (options: see ``ClassMeanStats.update``)."""
        current = self.first if self.second is None else self.second
        current.update(features, labels, labels_checked=labels_checked, check_finite=check_finite)

    def require_finite_sums(self, name: str = "features") -> None:
        """Raise if NaN/Inf reached the current pass's sums (after ``check_finite=False``)."""
        current = [self.first.sums] if self.second is None else [self.second.sq_dist]
        if not sums_finite(*current):
            raise InputError(
                f"{name}: the features contain NaN or Inf; check the model for overflow (e.g. "
                "use float32 instead of float16) or the data for NaN."
            )

    def merge(self, other: CollapseStatistics) -> CollapseStatistics:
        """Add another shard's statistics of the same pass in place; returns self."""
        if other.pass_number != self.pass_number:
            raise InputError(
                "cannot merge statistics from different passes; merge after each pass."
            )
        if self.second is None or other.second is None:  # both in pass 1 (checked above)
            self.first.merge(other.first)
        else:
            self.second.merge(other.second)
        return self

    def pass_tensors(self) -> list[torch.Tensor]:
        """The sums of the current pass (what shards add together, e.g. by all-reduce)."""
        if self.second is None:
            return [self.first.counts, self.first.sums]
        return [getattr(self.second, name) for name in STATE_SECOND_PASS]

    def state_dict(self, compact: bool = False) -> dict[str, torch.Tensor]:
        """Every sum of both passes (and the classifier), for saving: O(C·d + d²) numbers that
        :meth:`from_state_dict` turns back into statistics giving the same metrics.

        ``compact``: keep what the metrics read of the d×d within-class scatter — its
        projection on the span of the class means and the feature spectrum
        (:class:`~ncviz.metrics.stats.CompactScatter`, O(C·d)) — whenever that is smaller; the
        metrics are the same to rounding, but the statistics then take no more data."""
        if self.second is None:
            raise InputError("finish both passes before saving the statistics.")
        state = {"counts": self.first.counts, "sums": self.first.sums, "kept": self.second.kept}
        state.update(zip(STATE_SECOND_PASS, self.pass_tensors()))
        dim = int(self.first.sums.shape[1])
        reduced = self.second.compact  # statistics read from a compact state stay compact
        if compact and reduced is None:
            candidate = compact_scatter(self.first, self.second)
            if candidate.basis.numel() + candidate.projected.numel() < dim * dim:
                reduced = candidate  # kept only where it is smaller than the matrix itself
        if reduced is None:
            # saved whole (the accumulator holds only its upper triangle): one meaning in files
            state["scatter"] = self.second.within_scatter()
        else:
            del state["scatter"]
            state.update(zip(COMPACT_FIELDS, (reduced.basis, reduced.projected, reduced.spectrum)))
        if self.classifier is not None:
            state["weight"] = self.classifier.weight
            state["class_rows"] = self.classifier.class_rows
            if self.classifier.bias is not None:
                state["bias"] = self.classifier.bias
        return state

    @classmethod
    def from_state_dict(
        cls, state: dict[str, torch.Tensor], *, min_count: int | None = None
    ) -> CollapseStatistics:
        """Statistics with both passes done, from :meth:`state_dict`'s tensors (on the CPU)."""
        counts, sums = state["counts"].to(torch.int64), state["sums"].to(torch.float64)
        stats = cls(int(counts.shape[0]), int(sums.shape[1]), min_count=min_count)
        stats.first = ClassMeanStats(counts=counts, sums=sums)
        if "weight" in state:
            stats.classifier = Classifier(
                weight=state["weight"].to(torch.float64),
                bias=state["bias"].to(torch.float64) if "bias" in state else None,
                class_rows=state["class_rows"].to(torch.int64),
            )
        compact = None
        if "scatter" not in state:
            basis, projected, spectrum = (state[k].to(torch.float64) for k in COMPACT_FIELDS)
            compact = CompactScatter(basis, projected, spectrum)
        stats.second = ScatterStats(
            centers=stats.first.means(),
            kept=state["kept"].to(torch.bool),
            classifier=stats.classifier,
            scatter=state.get("scatter"),
            compact=compact,
            **{name: state[name] for name in STATE_SECOND_PASS[1:]},
        )
        return stats

    def start_second_pass(self, classes: np.ndarray | None = None) -> None:
        """Freeze the class means; later ``update`` calls accumulate the second pass."""
        if self.second is not None:
            raise InputError("the second pass has already started.")
        if int(self.first.counts.sum()) == 0:
            raise InputError("no samples were added in the first pass; feed the data first.")
        kept = kept_classes(self.first.counts, self.min_count, classes)
        self.second = ScatterStats.empty(self.first.means(), kept, self.classifier)

    def compute(
        self,
        classes: ArrayLike | None = None,
        options: CollapseOptions | None = None,
        **kwargs: Any,
    ) -> CollapseResult:
        """Finish: every metric the inputs allow. ``classes`` names the classes (default 0..C−1);
        the metric options as one :class:`CollapseOptions` or as keywords. Their ``min_count``
        must be the one the statistics were created with (it decided which classes entered the
        second pass)."""
        if self.second is None:
            raise InputError("call start_second_pass() and feed the data again before compute().")
        opts = CollapseOptions.of(options, **kwargs)
        # an options object leaves min_count open when it is None (its default)
        chosen = self.min_count if opts.min_count is None else opts.min_count
        asked = kwargs.get("min_count", chosen)
        if asked != self.min_count:
            raise InputError(
                f"min_count is fixed when the statistics are created (here {self.min_count}); "
                "pass min_count to CollapseStatistics (or the extraction) instead."
            )
        opts = replace(opts, min_count=self.min_count)
        names = np.arange(self.first.num_classes) if classes is None else np.asarray(classes)
        return finalize(self.first, self.second, opts, names)


#: Above this many classes a long tail switches the default minority to the rarer half.
MANY_CLASSES = 100


def default_minority(counts: torch.Tensor) -> torch.Tensor:
    """The default minority classes of docs/metrics.md.

    Step imbalance (Fang et al. 2021): the classes with fewer samples than half the largest.
    With many classes (C > 100) in a long tail — more than half of them below that line, as with
    Zipfian token classes — the minority is the rarer half instead: the classes at or below the
    median count.

    >>> import torch
    >>> default_minority(torch.tensor([100, 100, 100, 10, 10])).tolist()
    [False, False, False, True, True]
    >>> zipf = (10_000 / torch.arange(1, 201)).long()  # n_c ∝ 1/rank over 200 classes
    >>> minority = default_minority(zipf)
    >>> int(minority.sum()), bool(minority[100:].all()), bool(minority[:99].any())
    (100, True, False)
    """
    below_half = counts < counts.max() / 2.0
    if len(counts) <= MANY_CLASSES or 2 * int(below_half.sum()) <= len(counts):
        return below_half
    return counts <= counts.median()


def _minority_mask(counts: torch.Tensor, names: np.ndarray, minority: Any | None) -> torch.Tensor:
    if minority is None:
        return default_minority(counts)
    # labels are matched by their text, so 5 and "5" name the same class
    wanted = {str(name) for name in minority}
    present = [str(name) for name in names.tolist()]
    unknown = wanted - set(present)
    if unknown:
        raise InputError(
            f"minority classes {sorted(unknown)[:5]} are not among the labels; "
            "name minority classes by their labels."
        )
    return torch.tensor([name in wanted for name in present], device=counts.device)


def mean_pairwise_cosine(vectors: torch.Tensor) -> float:
    """Mean of cos(v_k, v_k′) over ordered pairs k ≠ k′, in O(K·d) memory and time.

    With unit vectors û_k, Σ_{k≠k′} û_kᵀû_k′ = ‖Σ_k û_k‖² − Σ_k ‖û_k‖², so no K×K matrix is
    formed (25k minority token classes would need 5 GB). NaN when a vector is zero.

    >>> import torch
    >>> etf = torch.eye(3, dtype=torch.float64) - 1 / 3  # simplex ETF: every cosine is −1/2
    >>> round(mean_pairwise_cosine(etf), 12)
    -0.5
    """
    unit = vectors / vectors.norm(dim=1, keepdim=True)
    k = len(vectors)
    total = unit.sum(dim=0)
    return float(((total * total).sum() - (unit * unit).sum()) / (k * (k - 1)))


def _nc1(
    centred_means: torch.Tensor, within_along: Callable[[torch.Tensor], torch.Tensor]
) -> tuple[float | None, int, torch.Tensor]:
    """Tr(Σ_W Σ_B⁺)/C with Σ_B⁺ from the top min(C−1, d) eigenpairs of Σ_B above 1e-10·λ_max;
    ``within_along(V)`` gives v_kᵀ Σ_W v_k for the rows of V.

    Returns (nc1 or None when C − 1 > d, the kept rank, the singular values of M). When nc1 is
    not reported only the singular values are computed (no singular vectors)."""
    num_classes, dim = centred_means.shape
    keep = min(num_classes - 1, dim)
    if num_classes - 1 > dim:
        sv = torch.linalg.svdvals(centred_means)
        directions = None
    else:
        _, sv, directions = torch.linalg.svd(centred_means, full_matrices=False)
    eig = sv[:keep] ** 2 / num_classes  # eigenvalues of Σ_B = (1/C) MᵀM in our row convention
    valid = eig > NC1_EIGEN_RTOL * eig[0] if keep and float(eig[0]) > 0 else eig > math.inf
    rank = int(valid.sum())
    if directions is None:
        return None, rank, sv
    directions = directions[:keep][valid]
    projected = within_along(directions)  # v_kᵀ Σ_W v_k
    return float((projected / eig[valid]).sum()) / num_classes, rank, sv


def _kept_moments(
    first: ClassMeanStats, second: ScatterStats
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """(counts n_c as float64, sums, means μ_c, N) of the kept classes."""
    every_class = second.all_kept  # then no C×d copies of the kept rows
    counts = first.counts if every_class else first.counts[second.kept]
    n = counts.to(torch.float64)
    sums = first.sums if every_class else first.sums[second.kept]
    # the pass-2 centres are these means (same division); reuse them rather than copy C×d again
    means = second.centers if every_class else sums / n[:, None]
    return n, sums, means, float(n.sum())


def _feature_spectrum(
    within_cov: torch.Tensor, n: torch.Tensor, sums: torch.Tensor, means: torch.Tensor, total: float
) -> torch.Tensor:
    """``sv_features``: the spectrum of the total covariance Σ_W + Σ_c (n_c/N)(μ_c − μ̄)(μ_c − μ̄)ᵀ
    of the kept samples (μ̄ their mean)."""
    sample_mean = sums.sum(dim=0) / total
    offsets = (means - sample_mean).mul_((n / total).sqrt()[:, None])  # √(n_c/N)(μ_c − μ̄)
    total_cov = within_cov + offsets.T @ offsets
    del offsets
    return covariance_singular_values(total_cov)


def compact_scatter(first: ClassMeanStats, second: ScatterStats) -> CompactScatter:
    """The :class:`~ncviz.metrics.stats.CompactScatter` of finished statistics: an orthonormal
    basis of the kept class means centred at the sample mean (right singular vectors; none when
    C − 1 > d, where NC1 is not reported), the scatter projected on it, the feature spectrum.
    Every global-mean convention centres the means inside that span, so NC1 reads only it."""
    n, sums, means, total = _kept_moments(first, second)
    scatter = second.within_scatter()
    num_classes, dim = means.shape
    if num_classes - 1 > dim:
        basis = scatter.new_zeros(0, dim)
    else:
        _, _, basis = torch.linalg.svd(means - sums.sum(dim=0) / total, full_matrices=False)
    projected = basis @ scatter @ basis.T
    projected = (projected + projected.T) / 2
    spectrum = _feature_spectrum(scatter / total, n, sums, means, total)
    return CompactScatter(basis, projected, spectrum)


def finalize(
    first: ClassMeanStats, second: ScatterStats, options: CollapseOptions, names: np.ndarray
) -> CollapseResult:
    """Turn the two passes' sums into every metric of docs/metrics.md the inputs allow.

    The d×d eigenproblem, the C×d SVDs and the C×C pair tiles each run on one CPU thread, side
    by side on the caller's threads (see :mod:`ncviz.metrics.threads`): LAPACK's solvers gain
    little from a second thread at these sizes, and on a loaded machine a two-thread
    ``eigvalsh`` of d = 512 took 10× its one-thread time."""
    device = first.sums.device
    workers = caller_threads() if device.type == "cpu" else 1
    with solver_threads(device):
        return _finalize(first, second, options, names, workers)


def _finalize(
    first: ClassMeanStats,
    second: ScatterStats,
    options: CollapseOptions,
    names: np.ndarray,
    workers: int = 1,
) -> CollapseResult:
    kept = second.kept
    every_class = second.all_kept
    counts = first.counts if every_class else first.counts[kept]
    n, sums, means, total = _kept_moments(first, second)
    second.release_workspace()  # the decision matrices are not needed to finish
    num_classes = means.shape[0]
    kept_np = kept.cpu().numpy()
    classes = names[kept_np]

    if options.global_mean == "class":
        global_mean = means.mean(dim=0)
    else:
        global_mean = sums.sum(dim=0) / total
    centred = means - global_mean
    # what NC1 and the feature spectrum read of Σ_W: the matrix, or a compact saved state's part
    compact = second.compact
    if compact is None:
        within_cov = second.within_scatter() / total

        def within_along(directions: torch.Tensor) -> torch.Tensor:
            return ((directions @ within_cov) * directions).sum(dim=1)

    else:

        def within_along(directions: torch.Tensor) -> torch.Tensor:
            return compact.along(directions) / total

    class_var = second.sq_dist[kept] / n
    between_trace = float((centred**2).sum()) / num_classes
    if between_trace == 0.0:
        raise InputError(
            f"all {num_classes} class means are identical, so the features carry no class "
            "information and collapse metrics are undefined; check the layer and the labels."
        )

    metrics: dict[str, float] = {}
    if options.min_count is not None:  # what min_count kept and dropped, for the table
        metrics["classes_kept"] = float(num_classes)
        metrics["classes_dropped"] = float(len(kept) - num_classes)
        metrics["samples_dropped"] = float(first.counts.sum() - counts.sum())
    weight = None
    if second.classifier is not None:
        weight = second.classifier.class_weight()
        weight = weight if every_class else weight[kept]
    # the solvers and the pair tiles are independent: side by side, on one thread each, so the
    # numbers do not depend on how many ran at once; the longest first
    tasks: dict[str, Callable[[], Any]] = {
        "geometry": partial(
            geometry_metrics,
            centred,
            weight,
            class_var,
            options.dist_exp,
            options.max_matrix_classes,
            means=means,
        ),
        "nc1": partial(_nc1, centred, within_along),
    }
    if compact is None:
        tasks["sv_features"] = partial(_feature_spectrum, within_cov, n, sums, means, total)
    if weight is not None:
        tasks["sv_weights"] = partial(singular_values, weight)
    if options.means_centring != "centred":
        tasks["sv_uncentred"] = partial(singular_values, means)
    dim = means.shape[1]
    rows = 2 if weight is not None else 1  # C×d matrices whose pairs and spectra are taken
    flops = 4.0 * dim**3 + rows * (10.0 * num_classes * dim * min(num_classes, dim))
    flops += rows * num_classes**2 * (2.0 * dim + 50.0)  # the pair tiles
    done = run_tasks(tasks, flops=flops, threads=workers)
    sv_features = done["sv_features"] if compact is None else compact.spectrum
    nc1, nc1_rank, sv_means = done["nc1"]
    if nc1 is not None:
        metrics["nc1"] = nc1
    metrics["nc1_rank"] = float(nc1_rank)
    metrics["nc1_trace_ratio"] = float((class_var * n).sum()) / total / between_trace

    geometry, arrays, warnings = done["geometry"]
    metrics.update(geometry)

    hits = second.classifier_hits[kept].to(torch.float64)
    if weight is not None:
        metrics["nc4"] = 1.0 - float(second.agreement[kept].sum()) / total
        metrics["accuracy"] = float(hits.sum()) / total

    rank_of = sv_means if options.means_centring == "centred" else done["sv_uncentred"]
    metrics[rank_metric(options.means_centring)] = float(numerical_rank(rank_of, options.tau))
    metrics["effective_rank_means"] = effective_rank(sv_means)

    minority = _minority_mask(counts, classes, options.minority_classes)
    num_minority = int(minority.sum())
    if num_minority >= 2:
        metrics["minority_cos_means"] = mean_pairwise_cosine(centred[minority])
        if weight is not None:
            metrics["minority_cos"] = mean_pairwise_cosine(weight[minority])
    if weight is not None and 1 <= num_minority < num_classes:
        norms = weight.norm(dim=1)
        metrics["norm_ratio_weights"] = float(norms[~minority].mean() / norms[minority].mean())
        metrics["accuracy_minority"] = float(hits[minority].sum() / n[minority].sum())
        metrics["accuracy_majority"] = float(hits[~minority].sum() / n[~minority].sum())

    chosen = convention(options.convention)
    if chosen.name != DEFAULT_CONVENTION:
        metrics = chosen.apply(
            ConventionInputs(
                means=means,
                centred=centred,
                counts=n,
                within_trace=float((class_var * n).sum()),
                weight=weight,
                agreement=None if weight is None else int(second.agreement[kept].sum()),
                metrics=metrics,
            )
        )
        if note := chosen.missing(metrics):
            warnings.append(note)

    arrays.update(
        {
            "class_counts": counts.cpu().numpy(),
            "class_means": means.cpu().numpy(),
            "class_variances": class_var.cpu().numpy(),
            "variability": (class_var / centred.norm(dim=1) ** 2).cpu().numpy(),
            "ncc_recall": (second.ncc_hits[kept].to(torch.float64) / n).cpu().numpy(),
            "sv_means": sv_means.cpu().numpy(),
            "sv_features": sv_features.cpu().numpy(),
        }
    )
    if weight is not None:
        arrays["recall"] = (hits / n).cpu().numpy()
        # per class: fraction of its samples where the classifier and the NCC agree (NC4 = 1 −
        # the count-weighted mean); frequency buckets and per-class views need it
        arrays["agreement"] = (second.agreement[kept].to(torch.float64) / n).cpu().numpy()
        arrays["class_weight"] = weight.cpu().numpy()
        arrays["sv_weights"] = done["sv_weights"].cpu().numpy()
    return CollapseResult(
        metrics=metrics,
        arrays=arrays,
        classes=classes,
        dropped_classes=names[~kept_np],
        minority_classes=classes[minority.cpu().numpy()],
        options=options,
        warnings=warnings,
    )


def class_rows_for(weight_rows: int, classes: np.ndarray) -> np.ndarray | None:
    """Which row of W belongs to each class: identity if counts match, else the integer label."""
    if weight_rows == len(classes):
        return None
    if classes.dtype.kind in "iu" and classes.min() >= 0 and classes.max() < weight_rows:
        return classes.astype(np.int64)
    raise InputError(
        f"classifier weight W has {weight_rows} rows but the labels have {len(classes)} classes "
        f"({classes[:3].tolist()}…); pass W with one row per class, or integer labels that index "
        "its rows."
    )


def weight_class_rows(weight: ArrayLike | None, classes: np.ndarray) -> np.ndarray | None:
    """:func:`class_rows_for` of a classifier weight given as any array (None without one)."""
    if weight is None:
        return None
    shape = as_tensor(weight, "classifier weight W").shape
    return class_rows_for(shape[0], classes) if len(shape) == 2 else None
