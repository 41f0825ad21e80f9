"""2-D views of layer features: PCA, or UMAP after PCA to 50 dimensions (McInnes et al. 2018).

Points are capped: beyond ``max_points`` a stratified random subsample is embedded, and the count
shown is returned so the figure can state it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ncviz.errors import OptionError

METHODS = ("pca", "umap")


@dataclass
class Embedding:
    coords: np.ndarray  # n_shown × 2
    labels: np.ndarray  # n_shown
    centres: np.ndarray  # classes × 2, mean of each class's points
    classes: np.ndarray
    method: str
    n_total: int
    values: np.ndarray | None = None  # a continuous target per point (regression), else None

    @property
    def n_shown(self) -> int:
        return len(self.coords)


def stratified_subsample(labels: np.ndarray, max_points: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of about ``max_points`` samples, every class keeping its share (rounded,
    at least 1) — or, with at least as many classes as points (a vocabulary), a uniform sample of
    exactly ``max_points``. Vectorised: no loop over classes.

    >>> stratified_subsample(np.repeat(["a", "b"], [90, 10]), 20).size
    20
    """
    if len(labels) <= max_points:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if len(counts) >= max_points:
        return np.sort(rng.choice(len(labels), size=max_points, replace=False))
    take = np.maximum(1, np.round(counts * (max_points / len(labels)))).astype(np.int64)
    shuffled = rng.permutation(len(labels))
    by_class = shuffled[np.argsort(inverse[shuffled], kind="stable")]  # random order per class
    starts = np.cumsum(counts) - counts
    rank = np.arange(len(labels)) - np.repeat(starts, counts)  # position inside its class
    return np.sort(by_class[rank < np.repeat(take, counts)])


def class_centres(coords: np.ndarray, labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Mean of each class's points (rows in the order of ``classes``), in one pass."""
    lookup = {cls: k for k, cls in enumerate(classes.tolist())}
    index = np.fromiter((lookup[y] for y in labels.tolist()), np.int64, len(labels))
    counts = np.bincount(index, minlength=len(classes)).astype(np.float64)
    sums = np.stack(
        [np.bincount(index, coords[:, k], minlength=len(classes)) for k in range(coords.shape[1])],
        axis=1,
    )
    return sums / counts[:, None]


def embed(
    features: np.ndarray,
    labels: np.ndarray,
    method: str = "pca",
    max_points: int = 5000,
    seed: int = 0,
    progress: Callable[[int, int, str], None] | None = None,
) -> Embedding:
    if method not in METHODS:
        raise OptionError(f"embedding method must be one of {METHODS}, got {method!r}.")
    features = np.asarray(features, dtype=np.float32)
    raw = np.asarray(labels)
    continuous = raw.dtype.kind == "f"  # regression targets: a colour scale, not classes
    if continuous:
        rng = np.random.default_rng(seed)
        index = np.arange(len(raw))
        if len(raw) > max_points:
            index = np.sort(rng.choice(len(raw), max_points, replace=False))
        labels = np.full(len(raw), "target")
    else:
        labels = raw.astype(str)
        index = stratified_subsample(labels, max_points, seed)
    x, y = features[index], labels[index]
    if progress:
        progress(0, 3, "PCA")
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    reduced = x @ vt[: min(50, len(vt))].T
    if method == "pca":
        coords = reduced[:, :2] if reduced.shape[1] >= 2 else np.pad(reduced, ((0, 0), (0, 1)))
    else:
        if progress:
            progress(1, 3, "UMAP (the first run compiles numba code)")
        import umap

        neighbours = max(2, min(15, len(x) - 1))
        coords = umap.UMAP(n_neighbors=neighbours, random_state=seed).fit_transform(reduced)
    classes = np.array(sorted(set(y), key=lambda s: (len(s), s)))
    centres = class_centres(np.asarray(coords, dtype=np.float64), y, classes)
    if progress:
        progress(3, 3, "done")
    values = raw[index].astype(np.float64) if continuous else None
    if continuous:
        classes, centres = np.array([]), np.zeros((0, 2))
    return Embedding(np.asarray(coords), y, centres, classes, method, len(labels), values)
