"""Collapse to several points per class: k-means sub-clusters, and NCMC as its paper defines it.

Two different questions, kept apart:

* **Sub-clusters** (:func:`multicentre_result`, rows ``subcluster_*``): do a class's features sit
  on a few points, whichever they are? Per class, the centres are found by k-means
  (scikit-learn) with k ∈ 2..``max_centres`` chosen by the silhouette score, and k = 1 (the
  class mean) when no k reaches ``min_silhouette`` (0.5: "reasonable structure", Kaufman &
  Rousseeuw) — or taken from given targets, each sample going to the target of its class with
  the largest cosine. With μ_c the class means, μ_G their mean, Tr Σ_B = (1/C) Σ_c ‖μ_c − μ_G‖²
  and s_j the mean of the samples assigned to centre j: per class ``nc`` = (1/n_c) Σ_{i∈c}
  ‖h_i − s_{a(i)}‖² / Tr Σ_B (one centre everywhere: the n_c-weighted mean over classes is
  ``nc1_trace_ratio``); ``subcluster_nc_ave``/``_std`` its mean and std (ddof = 1) over classes;
  ``subcluster_alignment`` the mean cos(h_i − μ_G, s_{a(i)} − μ_G) (cos(h_i, w_{a(i)}) for given
  targets); ``subcluster_count`` the mean number of occupied centres per class. This is *not*
  NCMC: features spread over three separate points of a class count as collapsed here.
* **NCMC** (:func:`ncmc_result`, rows ``ncmc_*``; Yan et al., NeurIPS 2024): a class k trained
  towards f_k fixed centres w_kj (unit; w_kj = cos θ v_kj + sin θ w_k) by the Cosine Loss
  collapses to the *mean of its centres* c̄_k = (1/f_k) Σ_j w_kj — the maximiser of the average
  cosine (1/f_k) Σ_j cos(h, w_kj) = ⟨h/‖h‖, c̄_k⟩. Per class, ``nc`` = (1/n_k) Σ_{i∈k}
  ‖h_i/‖h_i‖ − c̄_k/‖c̄_k‖‖² (0 when every feature points at its centre-mean, at most 4);
  ``ncmc_nc_ave``, ``ncmc_nc_std``: its mean and std (ddof = 1) over classes (the paper's NC_ave
  and NC_std, restated from its text: the authors' code was not available to us);
  ``ncmc_alignment``: mean over samples of cos(h_i, c̄_{y_i}); ``ncmc_centres``: mean f_k.
  :func:`class_aware_counts` gives minor classes more centres (the paper's class-aware strategy,
  with ncviz's own rule, stated there).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> blobs = np.array([[6.0, 0.0], [-6.0, 0.0], [0.0, 9.0]])   # class 0: two sub-clusters
>>> h = np.concatenate([blobs[[0, 1]].repeat(50, 0), blobs[[2]].repeat(100, 0)])
>>> h = h + 0.2 * rng.standard_normal(h.shape)
>>> y = np.repeat([0, 1], 100)
>>> result = multicentre_result(h, y, max_centres=4)
>>> result.centres.tolist()
[2, 1]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ncviz.errors import InputError
from ncviz.metrics.inputs import ArrayLike, encode_labels, features_matrix

DEFAULT_MAX_CENTRES = 5
MIN_SILHOUETTE = 0.5
MAX_ROWS_PER_CLASS = 2000


@dataclass
class MultiCentreResult:
    """Scalars (``metrics``) and per-class arrays, row k = class ``classes[k]``."""

    metrics: dict[str, float]
    classes: np.ndarray
    counts: np.ndarray
    centres: np.ndarray  # number of centres per class
    nc: np.ndarray  # per-class collapse to the nearest centre
    silhouette: np.ndarray  # best silhouette score per class (NaN: centres given, or k = 1 forced)
    alignment: np.ndarray  # per-class mean cosine to the assigned centre


def _choose_centres(
    rows: np.ndarray, max_centres: int, min_silhouette: float, seed: int
) -> tuple[np.ndarray, float]:
    """Assignment of ``rows`` to k-means clusters (k by silhouette; zeros for k = 1)."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    best_score, best = -math.inf, np.zeros(len(rows), np.int64)
    for k in range(2, min(max_centres, len(rows) - 1) + 1):
        assignment = KMeans(k, n_init=3, random_state=seed).fit_predict(rows)
        if len(np.unique(assignment)) < 2:
            continue
        score = float(silhouette_score(rows, assignment))
        if score > best_score:
            best_score, best = score, assignment
    if best_score < min_silhouette:
        return np.zeros(len(rows), np.int64), best_score if best_score > -math.inf else math.nan
    return best, best_score


def multicentre_result(
    features: ArrayLike,
    labels: ArrayLike,
    *,
    centres: Mapping[Any, ArrayLike] | ArrayLike | None = None,
    max_centres: int = DEFAULT_MAX_CENTRES,
    min_silhouette: float = MIN_SILHOUETTE,
    max_rows_per_class: int = MAX_ROWS_PER_CLASS,
    seed: int = 0,
) -> MultiCentreResult:
    """Per-class collapse to multiple centres (see the module docstring).

    Args:
        features: N×d; labels: N class labels (any values; ``classes`` gives the order).
        centres: the given centres per class — a mapping label → f×d array, or a C×f×d array in
            class order; None to find them by k-means.
        max_centres: the largest k tried per class (k-means).
        max_rows_per_class: k-means and the silhouette see at most this many rows of a class
            (a seeded subset); every row is then assigned to its nearest centroid.
    """
    h = features_matrix(features).cpu().numpy()
    encoded = encode_labels(labels, len(h))
    codes = encoded.codes.cpu().numpy()
    classes = encoded.classes
    num_classes = len(classes)
    counts = np.bincount(codes, minlength=num_classes)
    if (counts < 2).any():
        raise InputError(
            f"class {classes[int(np.argmin(counts))]!r} has fewer than 2 samples; multi-centre "
            "collapse needs at least 2 per class — drop rare classes first."
        )
    if max_centres < 1:
        raise InputError(f"max_centres must be at least 1, got {max_centres}.")
    given = _given_centres(centres, classes, h.shape[1])
    means = np.stack([h[codes == c].mean(axis=0) for c in range(num_classes)])
    global_mean = means.mean(axis=0)
    between = float(((means - global_mean) ** 2).sum(axis=1).mean())
    if between == 0:
        raise InputError("all class means are identical; multi-centre collapse is undefined.")
    rng = np.random.default_rng(seed)
    nc, found, silhouettes, alignment = (np.zeros(num_classes) for _ in range(4))
    cosines = np.zeros(len(h))
    for c in range(num_classes):
        members = np.flatnonzero(codes == c)
        rows = h[members]
        if given is not None:
            targets = given[c]
            unit = targets / np.linalg.norm(targets, axis=1, keepdims=True)
            normed = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-300)
            scores = normed @ unit.T
            assignment = np.argmax(scores, axis=1)
            cos = scores[np.arange(len(rows)), assignment]
            silhouettes[c] = math.nan
        else:
            fit_rows = rows
            if len(rows) > max_rows_per_class:
                fit_rows = rows[rng.choice(len(rows), max_rows_per_class, replace=False)]
            fit_assignment, silhouettes[c] = _choose_centres(
                fit_rows, max_centres, min_silhouette, seed
            )
            centroids = np.stack(
                [fit_rows[fit_assignment == j].mean(axis=0) for j in np.unique(fit_assignment)]
            )
            assignment = np.argmin(((rows[:, None, :] - centroids[None]) ** 2).sum(axis=2), 1)
            cos = _cosine(rows - global_mean, centroids[assignment] - global_mean)
        used = np.unique(assignment)
        sub_means = {j: rows[assignment == j].mean(axis=0) for j in used}
        residual = rows - np.stack([sub_means[j] for j in assignment])
        nc[c] = float((residual**2).sum(axis=1).mean()) / between
        found[c] = len(used)  # centres with at least one sample (of f given, or k found)
        alignment[c] = float(cos.mean())
        cosines[members] = cos
    metrics = {
        "subcluster_nc_ave": float(nc.mean()),
        "subcluster_nc_std": float(nc.std(ddof=1)) if num_classes > 1 else math.nan,
        "subcluster_alignment": float(cosines.mean()),
        "subcluster_count": float(found.mean()),
    }
    return MultiCentreResult(
        metrics=metrics,
        classes=classes,
        counts=counts,
        centres=found.astype(np.int64),
        nc=nc,
        silhouette=silhouettes,
        alignment=alignment,
    )


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.where(norms > 0, (a * b).sum(axis=1) / np.where(norms > 0, norms, 1.0), 0.0)


def _given_centres(
    centres: Mapping[Any, ArrayLike] | ArrayLike | None, classes: np.ndarray, dim: int
) -> list[np.ndarray] | None:
    if centres is None:
        return None
    if isinstance(centres, Mapping):
        by_name = {str(k): np.asarray(v, dtype=np.float64) for k, v in centres.items()}
        missing = [c for c in classes.tolist() if str(c) not in by_name]
        if missing:
            raise InputError(f"no centres given for classes {missing[:5]}; give every class.")
        chosen = [by_name[str(c)] for c in classes.tolist()]
    else:
        array = np.asarray(centres, dtype=np.float64)
        if array.ndim != 3 or array.shape[0] != len(classes):
            raise InputError(
                f"centres must be C×f×d ({len(classes)} classes), got shape {array.shape}."
            )
        chosen = list(array)
    # class-aware centres are stored C×f_max×d with NaN rows where a class has fewer
    chosen = [b[~np.isnan(b).all(axis=1)] if b.ndim == 2 else b for b in chosen]
    for c, block in zip(classes.tolist(), chosen):
        if block.ndim != 2 or block.shape[1] != dim or not len(block):
            raise InputError(
                f"the centres of class {c!r} must be f×{dim} (the feature dimension), got "
                f"shape {block.shape}."
            )
        if not np.isfinite(block).all() or (np.linalg.norm(block, axis=1) == 0).any():
            raise InputError(
                f"a centre of class {c!r} is zero or not finite; centres need a direction."
            )
    return chosen


def ncmc_centres(
    class_directions: ArrayLike,
    per_class: int | Sequence[int] = 20,
    theta: float = 0.2,
    seed: int = 0,
) -> np.ndarray:
    """NCMC's fixed targets: f_k centres for class k, w_kj = cos θ · v_kj + sin θ · w_k.

    ``class_directions`` (C×d, rows w_k made unit, e.g. a simplex ETF) are tilted towards random
    unit directions v_kj (the paper's defaults: f = 20, θ = 0.2). ncviz draws v_kj orthogonal to
    every class direction when d > C (else to w_k only), so a centre of class k has cosine sin θ
    with w_k and 0 with the other classes' directions: the head W = [w_k] still reads the class.
    ``per_class``: one f for every class, or f_k per class (:func:`class_aware_counts`).
    Returns C×max(f_k)×d unit vectors; a class with fewer centres has NaN rows after its own.

    >>> import numpy as np
    >>> targets = ncmc_centres(np.eye(3, 6), per_class=2, theta=0.2)
    >>> targets.shape, np.allclose(np.linalg.norm(targets, axis=2), 1)
    ((3, 2, 6), True)
    >>> np.round(targets[0] @ np.eye(3, 6).T, 4).tolist()   # sin 0.2 = 0.1987 with its own class
    [[0.1987, 0.0, 0.0], [0.1987, 0.0, 0.0]]
    >>> np.isnan(ncmc_centres(np.eye(2, 6), per_class=[1, 3])[0, 1:]).all()
    np.True_
    """
    w = np.asarray(class_directions, dtype=np.float64)
    w = w / np.linalg.norm(w, axis=1, keepdims=True)
    num_classes, dim = w.shape
    counts = np.broadcast_to(np.asarray(per_class, dtype=np.int64), (num_classes,))
    if (counts < 1).any():
        raise InputError(f"every class needs at least one centre, got {counts.tolist()}.")
    most = int(counts.max())
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((num_classes, most, dim))
    if dim > num_classes:
        basis, _ = np.linalg.qr(w.T)  # d×C, orthonormal basis of the class directions
        v -= (v @ basis) @ basis.T
    else:
        v -= (v * w[:, None, :]).sum(axis=2, keepdims=True) * w[:, None, :]
    v /= np.linalg.norm(v, axis=2, keepdims=True)
    targets = math.cos(theta) * v + math.sin(theta) * w[:, None, :]
    targets[np.arange(most)[None, :] >= counts[:, None]] = np.nan
    return targets


def class_aware_counts(counts: ArrayLike, base: int = 20, most: int = 80) -> np.ndarray:
    """Centres per class for NCMC's class-aware strategy: more for minor classes.

    The paper gives minor classes more centres (so their centre-mean leans on more directions);
    ncviz's rule — its own, not the paper's exact schedule — is f_k = min(``most``,
    ⌈``base``·√(n_max/n_k)⌉): the largest class keeps ``base`` (the paper's f = 20), a class 16×
    rarer gets 4× as many.

    >>> class_aware_counts([135, 60, 6]).tolist()
    [20, 30, 80]
    """
    n = np.asarray(counts, dtype=np.float64)
    if n.ndim != 1 or not len(n) or (n <= 0).any():
        raise InputError("class_aware_counts needs a positive sample count for every class.")
    return np.minimum(most, np.ceil(base * np.sqrt(n.max() / n) - 1e-9)).astype(np.int64)


@dataclass
class NCMCResult:
    """NCMC's collapse to each class's centre-mean: scalars and per-class arrays (row k =
    ``classes[k]``)."""

    metrics: dict[str, float]
    classes: np.ndarray
    counts: np.ndarray
    centres: np.ndarray  # f_k, the centres each class was given
    nc: np.ndarray  # (1/n_k) Σ ‖ĥ_i − ĉ_k‖² per class
    alignment: np.ndarray  # mean cos(h_i, c̄_k) per class


def ncmc_result(
    features: ArrayLike, labels: ArrayLike, centres: Mapping[Any, ArrayLike] | ArrayLike
) -> NCMCResult:
    """Collapse of every class to the mean of its given centres (NCMC; module docstring).

    >>> import numpy as np
    >>> targets = ncmc_centres(np.eye(2, 8), per_class=3, seed=1)
    >>> y = np.repeat([0, 1], 6)
    >>> at_mean = targets.mean(axis=1)[y] * 4.0          # every feature on its centre-mean
    >>> spread = targets[y, np.tile(np.arange(3), 4)]    # features on the separate centres
    >>> round(ncmc_result(at_mean, y, targets).metrics["ncmc_nc_ave"], 12)
    0.0
    >>> ncmc_result(spread, y, targets).metrics["ncmc_nc_ave"] > 0.5
    True
    """
    h = features_matrix(features).cpu().numpy()
    encoded = encode_labels(labels, len(h))
    codes, classes = encoded.codes.cpu().numpy(), encoded.classes
    given = _given_centres(centres, classes, h.shape[1])
    assert given is not None  # centres were passed
    counts = np.bincount(codes, minlength=len(classes))
    lengths = np.linalg.norm(h, axis=1, keepdims=True)
    if (lengths == 0).any():
        raise InputError(
            f"{int((lengths == 0).sum())} feature rows are zero: NCMC compares directions, "
            "and a zero feature has none."
        )
    unit = h / lengths
    nc, alignment, cosines = np.zeros(len(classes)), np.zeros(len(classes)), np.zeros(len(h))
    for k, block in enumerate(given):
        members = np.flatnonzero(codes == k)
        centre_mean = (block / np.linalg.norm(block, axis=1, keepdims=True)).mean(axis=0)
        norm = np.linalg.norm(centre_mean)
        if norm == 0:
            raise InputError(
                f"the centres of class {classes[k]!r} average to zero: NCMC's centre-mean has "
                "no direction."
            )
        cos = unit[members] @ (centre_mean / norm)
        cosines[members] = cos
        nc[k] = float(np.maximum(2.0 - 2.0 * cos, 0.0).mean()) if len(members) else math.nan
        alignment[k] = float(cos.mean()) if len(members) else math.nan
    present = counts > 0
    metrics = {
        "ncmc_nc_ave": float(nc[present].mean()),
        "ncmc_nc_std": float(nc[present].std(ddof=1)) if present.sum() > 1 else math.nan,
        "ncmc_alignment": float(cosines.mean()),
        "ncmc_centres": float(np.mean([len(b) for b in given])),
    }
    return NCMCResult(
        metrics=metrics,
        classes=classes,
        counts=counts,
        centres=np.array([len(b) for b in given], dtype=np.int64),
        nc=nc,
        alignment=alignment,
    )
