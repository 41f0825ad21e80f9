"""Collapse per frequency bucket of the classes: head, torso and tail of a long-tailed label set.

Language models treat next tokens as classes, and token frequencies are Zipfian; Wu & Papyan 2024
(Linguistic Collapse, arXiv 2405.17767) find that frequent and rare tokens collapse differently.
Classes are ranked by their sample count (ties by class order) and cut at ranks ``edges`` (default
the top 100, 100–1k, 1k–10k and the rest). Per bucket, from the finished statistics of all
classes (class means centred by the global mean of *all* classes, as for the whole-set metrics):
the pair metrics among the bucket's classes (``cdnv``, ``gnc2_log_mean``/``var``,
``nc2_equiangle_means``, ``nc2_equinorm_means``), ``unc3_mean``/``var`` with a classifier, and
``nc4``/``accuracy`` over the bucket's samples.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch

from ncviz.metrics.classification import CollapseResult
from ncviz.metrics.geometry import geometry_metrics

#: Rank cuts of the default buckets: top 100, 100–1k, 1k–10k, the rest.
BUCKET_EDGES = (100, 1_000, 10_000)
BUCKET_KEYS = (
    "cdnv",
    "gnc2_log_mean",
    "gnc2_log_var",
    "nc2_equiangle_means",
    "nc2_equinorm_means",
    "unc3_mean",
    "unc3_var",
)


def bucket_label(lo: int, hi: int | None) -> str:
    """``top 100``, ``100–1k``, ``10k+``: a bucket's rank range in words."""

    def short(k: int) -> str:
        return f"{k // 1000}k" if k >= 1000 and k % 1000 == 0 else str(k)

    if lo == 0:
        return f"top {short(hi)}" if hi is not None else "all"
    return f"{short(lo)}+" if hi is None else f"{short(lo)}–{short(hi)}"


def frequency_buckets(
    result: CollapseResult, edges: Sequence[int] = BUCKET_EDGES
) -> list[dict[str, float | str | int]]:
    """One dict per non-empty bucket: ``bucket``, ``classes``, ``samples``, ``share`` (of all
    samples) and the metrics above (pair metrics need ≥ 2 classes in the bucket).

    >>> import numpy as np
    >>> from ncviz.metrics import collapse_result
    >>> rng = np.random.default_rng(0)
    >>> labels = np.repeat(np.arange(6), [40, 30, 20, 5, 4, 3])
    >>> features = rng.standard_normal((6, 8))[labels] + 0.1 * rng.standard_normal((102, 8))
    >>> rows = frequency_buckets(collapse_result(features, labels), edges=[3])
    >>> [(row["bucket"], row["classes"], row["samples"]) for row in rows]
    [('top 3', 3, 90), ('3+', 3, 12)]
    """
    arrays = result.arrays
    counts = np.asarray(arrays["class_counts"], dtype=np.int64)
    means = torch.from_numpy(np.asarray(arrays["class_means"], dtype=np.float64))
    if result.options.global_mean == "class":
        global_mean = means.mean(dim=0)
    else:
        weights = torch.from_numpy(counts.astype(np.float64))
        global_mean = (means * weights[:, None]).sum(dim=0) / weights.sum()
    centred = means - global_mean
    variances = torch.from_numpy(np.asarray(arrays["class_variances"], dtype=np.float64))
    weight = arrays.get("class_weight")
    order = np.argsort(-counts, kind="stable")
    cuts = [0, *[int(e) for e in edges if 0 < int(e) < len(counts)], len(counts)]
    total = float(counts.sum())
    rows: list[dict[str, float | str | int]] = []
    for lo, hi in itertools.pairwise(cuts):
        members = order[lo:hi]
        index = torch.from_numpy(members)
        n = counts[members].astype(np.float64)
        row: dict[str, float | str | int] = {
            "bucket": bucket_label(lo, hi if hi < len(counts) else None),
            "classes": len(members),
            "samples": int(n.sum()),
            "share": float(n.sum() / total),
        }
        if len(members) >= 2:
            w = None if weight is None else torch.from_numpy(np.asarray(weight)[members])
            scalars, _, _ = geometry_metrics(
                centred[index],
                w,
                variances[index],
                result.options.dist_exp,
                max_matrix_classes=0,
                means=means[index],
            )
            row.update({key: scalars[key] for key in BUCKET_KEYS if key in scalars})
        if "agreement" in arrays:
            row["nc4"] = float(1.0 - (np.asarray(arrays["agreement"])[members] * n).sum() / n.sum())
            row["accuracy"] = float((np.asarray(arrays["recall"])[members] * n).sum() / n.sum())
        rows.append(row)
    return rows


def most_frequent_classes(counts: Sequence[int] | np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` classes with the most samples, most frequent first (ties by class
    order) — the classes a view of many classes shows.

    >>> most_frequent_classes([5, 9, 7, 9], 3).tolist()
    [1, 3, 2]
    """
    return np.argsort(-np.asarray(counts, dtype=np.int64), kind="stable")[: max(1, k)]


def top_class_cosines(
    result: CollapseResult, k: int, of: str = "means"
) -> tuple[np.ndarray, list[str]]:
    """Cosines among the ``k`` most frequent classes (by sample count) and their labels: of the
    class means centred by the global mean (``of="means"``), or of the classifier rows
    (``of="weights"``) — the token heatmaps of a vocabulary too large to draw whole.

    >>> import numpy as np
    >>> from ncviz.metrics import collapse_result
    >>> labels = np.repeat(np.arange(3), [5, 9, 7])
    >>> means = np.array([[1.0, 0.0], [-0.5, 0.9], [-0.5, -0.9]])
    >>> cos, names = top_class_cosines(collapse_result(means[labels], labels), 2)
    >>> names, round(float(cos[0, 1]), 3)  # centred by the mean of the class means (default)
    (['1', '2'], -0.528)
    """
    arrays = result.arrays
    counts = np.asarray(arrays["class_counts"], dtype=np.int64)
    top = most_frequent_classes(counts, k)
    if of == "weights":
        if "class_weight" not in arrays:
            raise ValueError("this layer has no classifier rows.")
        rows = np.asarray(arrays["class_weight"], dtype=np.float64)[top]
    else:
        means = np.asarray(arrays["class_means"], dtype=np.float64)
        if result.options.global_mean == "class":
            centre = means.mean(axis=0)
        else:
            centre = counts @ means / counts.sum()
        rows = means[top] - centre
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    unit = rows / np.where(norms > 0, norms, 1.0)
    return unit @ unit.T, [str(result.classes[i]) for i in top]
