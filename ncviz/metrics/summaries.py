"""The small computations behind the figures: a fitted simplex ETF, principal projections, decay
rates."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def fitted_simplex_etf(centred_means: np.ndarray) -> np.ndarray:
    """The simplex ETF closest to the centred class means (rows): ETF vertices scaled to the
    means' average norm, rotated onto them by orthogonal Procrustes (min ‖E Q − M‖_F)."""
    m = np.asarray(centred_means, dtype=np.float64)
    num_classes = len(m)
    centering = np.eye(num_classes) - 1.0 / num_classes
    basis, _, _ = np.linalg.svd(centering)
    etf = basis[:, : num_classes - 1] * np.sqrt(num_classes / (num_classes - 1))
    etf *= np.linalg.norm(m, axis=1).mean()
    u, _, vt = np.linalg.svd(etf.T @ m, full_matrices=False)
    return etf @ (u @ vt)


def principal_projection(rows: np.ndarray, dims: int = 3) -> np.ndarray:
    """The top ``dims`` right singular vectors of ``rows`` (dims × d), zero-padded if needed."""
    _, _, vt = np.linalg.svd(np.asarray(rows, dtype=np.float64), full_matrices=False)
    if len(vt) < dims:
        vt = np.vstack([vt, np.zeros((dims - len(vt), vt.shape[1]))])
    return vt[:dims]


def decay_rate(values: Sequence[float]) -> float:
    """Geometric per-layer decay: exp(slope of log value against layer index) (He & Su 2023);
    < 1 means the metric shrinks by that factor per layer."""
    y = np.log(np.asarray(values, dtype=float))
    if len(y) < 2 or not np.isfinite(y).all():
        return float("nan")
    slope = np.polyfit(np.arange(len(y)), y, 1)[0]
    return float(np.exp(slope))
