"""The small computations behind the figures: a fitted simplex ETF, principal projections, decay
rates."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def fitted_simplex_etf(centred_means: np.ndarray) -> np.ndarray:
    """The simplex ETF closest to the class means M (rows, C × d): ETF vertices scaled to the
    means' average norm, rotated onto them by orthogonal Procrustes (min ‖E Q − M‖_F).

    With E = s·B (B: an orthonormal basis of 1^⊥, C × (C−1); s = mean‖m_c‖·√(C/(C−1))) the
    Procrustes solution is E Q = s·B u vᵀ where Bᵀ M = u Σ vᵀ. Since B Bᵀ = P (the centring
    projector), B u = U for the thin SVD P M = U Σ vᵀ, so the fit is s·U_k vᵀ_k with
    k = min(C − 1, d): O(C·d²) time and C × d memory — no C × C matrix, so a 32k-token vocabulary
    fits in megabytes. Directions where P M is degenerate (σ = 0) are completed inside 1^⊥.

    >>> etf = np.array([[1.0, 0.0], [-0.5, 3**0.5 / 2], [-0.5, -(3**0.5) / 2]])  # C = 3, d = 2
    >>> bool(np.allclose(fitted_simplex_etf(2 * etf), 2 * etf))
    True
    """
    m = np.asarray(centred_means, dtype=np.float64)
    num_classes, dim = m.shape
    rank = min(num_classes - 1, dim)
    if rank < 1:
        return np.zeros_like(m)
    scale = np.linalg.norm(m, axis=1).mean() * np.sqrt(num_classes / (num_classes - 1))
    centred = m - m.mean(axis=0)
    left, singular, right = np.linalg.svd(centred, full_matrices=False)
    left, right = left[:, :rank], right[:rank]
    degenerate = singular[:rank] <= singular[:1].max(initial=0.0) * 1e-12 * max(m.shape)
    if degenerate.any():
        left = _completed_in_centred_space(left[:, ~degenerate], rank)
        right = np.vstack([right[~degenerate], right[degenerate]])
    return scale * (left @ right)


def _completed_in_centred_space(columns: np.ndarray, count: int) -> np.ndarray:
    """``columns`` (orthonormal, orthogonal to 1) extended to ``count`` orthonormal columns that
    stay orthogonal to 1: fixed pseudo-random directions, centred and orthogonalised."""
    num_rows = len(columns)
    extra = np.random.default_rng(0).standard_normal((num_rows, count - columns.shape[1]))
    extra -= extra.mean(axis=0)
    extra -= columns @ (columns.T @ extra)
    basis, _ = np.linalg.qr(extra)
    basis -= columns @ (columns.T @ basis)  # once more: orthogonality to working precision
    basis, _ = np.linalg.qr(basis)
    return np.hstack([columns, basis])


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


def reading_notes(
    metrics: dict[str, float], num_classes: int, dim: int, chance: dict[str, float]
) -> list[str]:
    """What a reader of the headline numbers must know when C − 1 > d (a language model's
    vocabulary in a narrow residual stream): why NC1 is absent, where the ETF distance's floor
    lies, and — when the ETF distance is worse than chance — which of its parts is.

    >>> notes = reading_notes({"nc2_etf_distance": 1.2, "nc2_etf_distance_floor": 0.9,
    ...     "nc2_equinorm_means": 0.5, "nc2_equiangle_means": 0.1}, 184, 64,
    ...     {"nc2_etf_distance": 1.0, "nc2_equinorm_means": 0.09, "nc2_equiangle_means": 0.12})
    >>> len(notes), "equinorm" in notes[2], "equiangle" in notes[2]
    (3, True, False)
    """
    if num_classes - 1 <= dim:
        return []
    notes = []
    if "nc1" not in metrics:
        notes.append(
            f"NC1 = Tr(Σ_W Σ_B⁺)/C is reported only when C − 1 ≤ d; here C − 1 = "
            f"{num_classes - 1:,} > d = {dim:,}, so read within-class variability from "
            "nc1_trace_ratio and cdnv."
        )
    floor = metrics.get("nc2_etf_distance_floor")
    if floor is not None:
        notes.append(
            f"{num_classes:,} means in {dim:,} dimensions cannot form a simplex ETF: the ETF "
            f"distance is at least √(2 − 2√(d/(C−1))) = {floor:.3f} for any configuration, so read "
            "nc2_etf_distance against that floor and against chance, not against 0."
        )
    distance, at_chance = metrics.get("nc2_etf_distance"), chance.get("nc2_etf_distance")
    if distance is not None and at_chance is not None and distance > at_chance:
        worse = [
            key.removeprefix("nc2_").removesuffix("_means")
            for key in ("nc2_equinorm_means", "nc2_equiangle_means")
            if key in metrics and key in chance and metrics[key] > chance[key]
        ]
        why = (
            f"its {' and '.join(worse)} spread is above that of random means"
            if worse
            else "its Gram matrix is further from the ETF's than random means' are"
        )
        notes.append(
            f"The ETF distance {distance:.3f} is worse than chance ({at_chance:.3f}): {why} "
            "(e.g. frequent classes with longer means than rare ones) — a trained model can "
            "be more structured than chance and still further from an ETF."
        )
    return notes
