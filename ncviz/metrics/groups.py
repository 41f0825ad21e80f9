"""Collapse per group (environment, domain, any per-sample attribute) and across groups.

Every group g gets the full classification metrics of its own samples (:class:`CollapseResult`):
its class means, NC1, ETF distance, accuracy, …. A class with fewer than 2 samples in a group
(missing there, or seen once) is left out of *that group's* metrics, as ``min_count=2`` does, and
the group's ``classes_dropped``/``samples_dropped`` say so; a group with fewer than 2 classes left
has no metrics and a warning says why. Across groups (docs/metrics.md, "Groups"), with
M̂_g the class means of group g centred by their mean and scaled to unit Frobenius norm:

* ``prototype_distance`` (g, g′) = ‖M̂_g − M̂_g′‖_F over the classes both groups hold (each side
  centred and normalised over those classes). 0 when the environments' prototypes coincide up to
  scale; at most 2. NC-inspired OOD feature alignment (NeurIPS 2024) drives it down.
* ``etf_alignment`` g = ‖M̂_g − Ê‖_F, Ê a common simplex ETF restricted to g's classes (centred
  and normalised the same way): the ETF given (e.g. a fixed ETF head's W), else the best-fit
  common ETF, E = V_r U_rᵀ/√(C−1) from the SVD Σ_g M̂_g = V S Uᵀ (r = C − 1 components) — the
  maximiser of Σ_g ⟨M̂_g, E⟩ over all unit-Frobenius simplex ETFs, i.e. the ETF closest to every
  group at once. It is fitted on the groups that hold every class (if none does, on the pooled
  class means).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> y = np.tile(np.arange(3), 40)
>>> etf = np.eye(3)[y] * 5.0                             # the same prototypes in both groups
>>> h = np.hstack([etf, np.zeros((120, 2))]) + 0.1 * rng.standard_normal((120, 5))
>>> g = np.repeat(["a", "b"], 60)
>>> res = group_result(h, y, g)
>>> res.groups, round(float(res.prototype_distances[0, 1]), 2)
(['a', 'b'], 0.02)
>>> round(res.etf_alignment["a"], 2)
0.01
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from ncviz.errors import InputError
from ncviz.metrics.classification import (
    CollapseResult,
    CollapseStatistics,
    finalize,
    weight_class_rows,
)
from ncviz.metrics.inputs import ArrayLike, as_tensor, encode_labels, features_matrix
from ncviz.metrics.options import CollapseOptions

#: a group needs this many samples of a class for the class to enter the group's metrics
GROUP_MIN_COUNT = 2
MAX_GROUPS = 64


@dataclass
class GroupResult:
    """Per-group collapse and the cross-group prototype geometry.

    ``results[g]`` is group g's :class:`CollapseResult` (absent for a group with fewer than 2
    classes); ``prototype_distances[i, j]`` the distance between ``groups[i]`` and
    ``groups[j]`` (NaN when they share fewer than 2 classes); ``common_etf`` the C×d simplex ETF
    (rows per class of ``classes``) that ``etf_alignment`` measures against.
    """

    groups: list[str]
    results: dict[str, CollapseResult]
    classes: np.ndarray
    prototype_distances: np.ndarray
    etf_alignment: dict[str, float]
    common_etf: np.ndarray | None
    etf_source: str
    warnings: list[str] = field(default_factory=list)

    def group_metrics(self, group: str) -> dict[str, float]:
        """Every scalar of one group: its collapse metrics, ``etf_alignment`` and the mean
        ``prototype_distance`` to the other groups."""
        if group not in self.results:
            return {}
        metrics = dict(self.results[group].metrics)
        if group in self.etf_alignment:
            metrics["etf_alignment"] = self.etf_alignment[group]
        row = self.prototype_distances[self.groups.index(group)]
        others = np.delete(row, self.groups.index(group))
        others = others[np.isfinite(others)]
        if len(others):
            metrics["prototype_distance"] = float(others.mean())
        return metrics

    def prototypes(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per group, (class names, uncentred class means) — for prototype PCA views."""
        return {
            g: (np.asarray(r.classes), np.asarray(r.arrays["class_means"]))
            for g, r in self.results.items()
        }


def normalised_prototypes(means: np.ndarray) -> np.ndarray:
    """M̂: the rows (class means) centred by their mean, the matrix scaled to unit Frobenius norm.

    >>> normalised_prototypes(np.array([[1.0, 0.0], [-1.0, 0.0]])).round(4).tolist()
    [[0.7071, 0.0], [-0.7071, 0.0]]
    """
    centred = np.asarray(means, dtype=np.float64)
    centred = centred - centred.mean(axis=0)
    norm = np.linalg.norm(centred)
    if norm == 0:
        return np.full_like(centred, np.nan)
    return centred / norm


def _shared(a_names: np.ndarray, b_names: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row indices into a and b of the classes both hold, in a's order."""
    b_index = {str(name): k for k, name in enumerate(b_names.tolist())}
    rows = [(k, b_index[str(n)]) for k, n in enumerate(a_names.tolist()) if str(n) in b_index]
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    first, second = zip(*rows)
    return np.asarray(first), np.asarray(second)


def prototype_distance(
    names_a: np.ndarray, means_a: np.ndarray, names_b: np.ndarray, means_b: np.ndarray
) -> float:
    """‖M̂_a − M̂_b‖_F over the classes both hold (NaN when they share fewer than 2)."""
    rows_a, rows_b = _shared(np.asarray(names_a), np.asarray(names_b))
    if len(rows_a) < 2:
        return math.nan
    diff = normalised_prototypes(means_a[rows_a]) - normalised_prototypes(means_b[rows_b])
    return float(np.linalg.norm(diff))


def best_fit_etf(normalised: list[np.ndarray]) -> np.ndarray:
    """The unit-Frobenius simplex ETF E (C×d, rows centred) maximising Σ_g ⟨M̂_g, E⟩.

    With A = Σ_g M̂_g = V S Uᵀ (rows centred, so rank ≤ C − 1), E = V_r U_rᵀ/√(C−1), r = C − 1:
    its Gram E Eᵀ = (I − 11ᵀ/C)/(C−1) is the ETF's. Needs d ≥ C − 1.
    """
    total = np.sum(normalised, axis=0)
    num_classes, dim = total.shape
    rank = num_classes - 1
    if dim < rank:
        raise InputError(
            f"a simplex ETF of {num_classes} classes needs d ≥ {rank} dimensions, the features "
            f"have {dim}; etf_alignment is undefined here."
        )
    left, _, right = np.linalg.svd(total, full_matrices=False)
    return left[:, :rank] @ right[:rank] / math.sqrt(rank)


def _aligned_means(result: CollapseResult, names: np.ndarray) -> np.ndarray:
    """The result's class means in the order of ``names`` (which it holds all of)."""
    rows_names, rows_result = _shared(names, np.asarray(result.classes))
    means = np.empty((len(names), result.arrays["class_means"].shape[1]))
    means[rows_names] = result.arrays["class_means"][rows_result]
    return means


def group_labels(groups: ArrayLike, count: int) -> tuple[np.ndarray, list[str]]:
    """(group index per sample, group names in sorted order) from any per-sample labels."""
    values = groups.cpu().numpy() if isinstance(groups, torch.Tensor) else np.asarray(groups)
    if values.ndim != 1 or len(values) != count:
        raise InputError(
            f"groups must hold one group per sample ({count}), got shape {values.shape}."
        )
    names, codes = np.unique(values.astype(str), return_inverse=True)
    if len(names) > MAX_GROUPS:
        raise InputError(
            f"{len(names)} groups; at most {MAX_GROUPS} are analysed (each keeps its own "
            "statistics) — pass a coarser grouping."
        )
    return codes, [str(n) for n in names]


def group_min_count(options: CollapseOptions) -> int:
    """A group's min_count: the options' own, and at least 2 (a group need not hold every
    class; one that holds a class once cannot measure its variance).

    >>> group_min_count(CollapseOptions()), group_min_count(CollapseOptions(min_count=5))
    (2, 5)
    """
    return max(int(options.min_count or GROUP_MIN_COUNT), GROUP_MIN_COUNT)


def group_result(
    features: ArrayLike,
    labels: ArrayLike,
    groups: ArrayLike,
    weight: ArrayLike | None = None,
    bias: ArrayLike | None = None,
    *,
    etf: ArrayLike | None = None,
    options: CollapseOptions | None = None,
    **kwargs: Any,
) -> GroupResult:
    """Collapse per group and across groups for data in memory (see the module docstring).

    Args:
        features, labels, weight, bias: as for :func:`ncviz.collapse_result`; labels are
            encoded over all samples, so every group's classes share one numbering.
        groups: one group per sample (environment index, domain name, …).
        etf: the common ETF (C×d, one row per class) for ``etf_alignment``; default: the best
            fit to the groups.
        options, kwargs: collapse options (one object, or keywords); ``min_count`` is at
            least 2 within a group.
    """
    opts = CollapseOptions.of(options, **kwargs)
    h = features_matrix(features, check_finite=False, keep_dtype=True)
    encoded = encode_labels(labels, h.shape[0])
    codes, names = group_labels(groups, h.shape[0])
    class_rows = weight_class_rows(weight, encoded.classes)
    statistics: dict[str, CollapseStatistics] = {}
    min_count = group_min_count(opts)
    for index, name in enumerate(names):
        rows = torch.from_numpy(np.flatnonzero(codes == index))
        stats = CollapseStatistics(
            len(encoded.classes),
            h.shape[1],
            weight,
            bias,
            class_rows=class_rows,
            min_count=min_count,
            device=h.device,
        )
        part, part_labels = h[rows.to(h.device)], encoded.codes[rows].to(h.device)
        stats.update(part, part_labels)
        try:
            stats.start_second_pass(encoded.classes)
        except InputError:  # fewer than 2 classes here: finishing says so, as a warning
            statistics[name] = stats
            continue
        stats.update(part, part_labels)
        statistics[name] = stats
    pooled = h.to(torch.float64)
    counts = torch.bincount(encoded.codes, minlength=len(encoded.classes)).to(torch.float64)
    sums = torch.zeros(len(encoded.classes), h.shape[1], dtype=torch.float64)
    sums.index_add_(0, encoded.codes, pooled.cpu())
    pooled_means = (sums / counts.clamp(min=1)[:, None]).numpy()
    return group_result_from_statistics(
        statistics, encoded.classes, etf=etf, pooled_means=pooled_means, options=opts
    )


def group_result_from_statistics(
    statistics: Mapping[str, CollapseStatistics],
    classes: np.ndarray,
    *,
    etf: ArrayLike | None = None,
    pooled_means: np.ndarray | None = None,
    options: CollapseOptions | None = None,
    **kwargs: Any,
) -> GroupResult:
    """:class:`GroupResult` from per-group statistics (both passes done) over one class
    numbering (``classes``) — in memory or read back from a recorded run."""
    opts = CollapseOptions.of(options, **kwargs)
    settings = replace(opts, min_count=group_min_count(opts))
    results: dict[str, CollapseResult] = {}
    warnings: list[str] = []
    for name, stats in statistics.items():
        try:
            if stats.second is None:  # its first pass already failed the class check
                stats.start_second_pass(classes)
            assert stats.second is not None  # started above, or raised
            results[name] = finalize(stats.first, stats.second, settings, np.asarray(classes))
        except InputError as error:
            warnings.append(f"group {name}: {error}")
    result = assemble_groups(results, list(statistics), classes, etf=etf, pooled_means=pooled_means)
    result.warnings[:0] = warnings
    return result


def assemble_groups(
    results: Mapping[str, CollapseResult],
    groups: list[str],
    classes: np.ndarray,
    *,
    etf: ArrayLike | None = None,
    pooled_means: np.ndarray | None = None,
) -> GroupResult:
    """:class:`GroupResult` from finished per-group results (in memory, or read back from a
    cache or a recorded run): the cross-group distances and the ETF alignment come from their
    class means; ``classes`` names the rows of ``etf`` and ``pooled_means``."""
    warnings: list[str] = []
    size = len(groups)
    distances = np.full((size, size), math.nan)
    for i, first in enumerate(groups):
        for j, second in enumerate(groups):
            if first in results and second in results:
                a, b = results[first], results[second]
                distances[i, j] = (
                    0.0
                    if i == j
                    else prototype_distance(
                        a.classes, a.arrays["class_means"], b.classes, b.arrays["class_means"]
                    )
                )
    names = np.asarray(classes)
    source = "given"
    common: np.ndarray | None
    if etf is not None:
        common = as_tensor(etf, "etf").to(torch.float64).cpu().numpy()
        if common.ndim != 2 or common.shape[0] != len(names):
            raise InputError(
                f"etf must be C×d with one row per class ({len(names)} rows), got shape "
                f"{common.shape}; pass the fixed head's W."
            )
    else:
        complete = [
            normalised_prototypes(_aligned_means(results[g], names))
            for g in groups
            if g in results and len(results[g].classes) == len(names)
        ]
        source = "best fit to the groups holding every class"
        if not complete and pooled_means is not None:
            complete, source = [normalised_prototypes(pooled_means)], "best fit to pooled means"
        try:
            common = best_fit_etf(complete) if complete else None
        except InputError as error:
            warnings.append(str(error))
            common = None
    alignment: dict[str, float] = {}
    if common is not None:
        for group in groups:
            if group not in results:
                continue
            result = results[group]
            rows_etf, rows_group = _shared(names, np.asarray(result.classes))
            if len(rows_etf) >= 2:
                mine = normalised_prototypes(result.arrays["class_means"][rows_group])
                theirs = normalised_prototypes(common[rows_etf])
                alignment[group] = float(np.linalg.norm(mine - theirs))
    return GroupResult(
        groups=list(groups),
        results=dict(results),
        classes=names,
        prototype_distances=distances,
        etf_alignment=alignment,
        common_etf=common,
        etf_source=source,
        warnings=warnings,
    )
