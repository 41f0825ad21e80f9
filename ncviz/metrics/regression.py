"""Neural regression collapse (NRC1–NRC3; Andriopoulos et al. 2024).

For targets y_i ∈ Rⁿ, features h_i ∈ R^d and a linear head W ∈ R^{n×d}, with
ĥ_i = (h_i − h̄)/‖h_i − h̄‖ (centred then unit-normalised; ``center=False`` skips the centring, the
authors' own convention):

* ``nrc1`` = (1/N) Σ_i ‖ĥ_i − P_n ĥ_i‖², P_n the projector on the top-n principal directions of ĥ
* ``nrc2`` = (1/N) Σ_i ‖ĥ_i − P_W ĥ_i‖², P_W = Wᵀ(WWᵀ)⁺W, the projector on W's row space
* ``nrc3`` = min_{γ ∈ [0, λ_min(Σ_Y)]} ‖WWᵀ/‖WWᵀ‖_F − A_γ/‖A_γ‖_F‖_F², A_γ = Σ_Y^{1/2} − γ^{1/2} I,
  with the minimiser reported as ``nrc3_gamma``. The UFM optimum is
  WWᵀ = √(λ_H/λ_W) (Σ_Y^{1/2} − √(λ_H λ_W) I)_+, i.e. nrc3 = 0 at γ = λ_H λ_W.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.optimize import minimize_scalar

from ncviz.errors import InputError
from ncviz.metrics.inputs import ArrayLike, as_tensor, features_matrix

_GAMMA_GRID = 257
_EVR_TOP = 64


@dataclass
class RegressionResult:
    """``metrics`` (nrc1, nrc2, nrc3, nrc3_gamma) and arrays for plots.

    Arrays: ``evr_features`` (explained-variance ratios of the top feature PCs), ``ww`` (WWᵀ),
    ``target_cov`` (Σ_Y), ``ufm_ww`` (the best A_γ scaled to ‖WWᵀ‖_F), ``gamma_grid`` and
    ``nrc3_curve`` (nrc3 as a function of γ).
    """

    metrics: dict[str, float]
    arrays: dict[str, np.ndarray]


def _targets_matrix(targets: ArrayLike, num_samples: int) -> torch.Tensor:
    y = as_tensor(targets, "targets")
    y = features_matrix(y[:, None] if y.ndim == 1 else y, name="targets")
    if y.shape[0] != num_samples:
        raise InputError(
            f"targets have {y.shape[0]} rows but features have {num_samples}; "
            "pass one target vector per feature row."
        )
    return y


def _projection_residual(unit: torch.Tensor, basis: torch.Tensor) -> float:
    """(1/N) Σ_i ‖x_i − P x_i‖² for P the projector on the orthonormal rows of ``basis``."""
    residual = unit - (unit @ basis.T) @ basis
    return float((residual**2).sum(dim=1).mean())


def _nrc3_curve(
    ww: torch.Tensor, target_cov: torch.Tensor
) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Minimise ‖Ŵ − Â_γ‖² over γ ∈ [0, λ_min(Σ_Y)]; returns (nrc3, γ*, γ grid, curve)."""
    eigenvalues, vectors = torch.linalg.eigh(target_cov)
    eigenvalues = eigenvalues.clamp(min=0.0)
    w_hat = ww / ww.norm()
    rotated = vectors.T @ w_hat @ vectors  # Â_γ is diagonal in Σ_Y's eigenbasis
    roots = eigenvalues.sqrt()

    def distance(root_gamma: float) -> float:
        a = roots - root_gamma
        norm = float(a.norm())
        if norm == 0.0:
            return math.nan
        return float(((rotated - torch.diag(a / norm)) ** 2).sum())

    top = float(roots.min())
    grid = np.linspace(0.0, top, _GAMMA_GRID) if top > 0 else np.zeros(1)
    curve = np.array([distance(s) for s in grid])
    best = int(np.nanargmin(curve))
    root_gamma, value = float(grid[best]), float(curve[best])
    if top > 0:
        lo, hi = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
        refined = minimize_scalar(
            distance, bounds=(lo, hi), method="bounded", options={"xatol": 1e-12 * top}
        )
        if refined.success and refined.fun < value:
            root_gamma, value = float(refined.x), float(refined.fun)
    return value, root_gamma**2, grid**2, curve


def regression_result(
    features: ArrayLike,
    targets: ArrayLike,
    weight: ArrayLike | None = None,
    *,
    center: bool = True,
    device: torch.device | str | None = None,
) -> RegressionResult:
    """NRC metrics and plot arrays for features N×d, targets N×n and a head W (n×d).

    Without ``weight`` only ``nrc1`` and the feature spectrum are computed.
    """
    if device is None:
        device = features.device if isinstance(features, torch.Tensor) else "cpu"
    h = features_matrix(features, device=device)
    num_samples, dim = h.shape
    if num_samples < 2:
        raise InputError("regression metrics need at least 2 samples.")
    y = _targets_matrix(targets, num_samples).to(device)
    n_targets = y.shape[1]
    if n_targets > dim:
        raise InputError(
            f"targets have {n_targets} dimensions but features only {dim}; NRC needs n ≤ d."
        )

    centred = h - h.mean(dim=0)
    lengths = (centred if center else h).norm(dim=1, keepdim=True)
    if bool((lengths == 0).any()):
        raise InputError(
            f"{int((lengths == 0).sum())} feature rows equal the feature mean (zero length after "
            "centring); NRC normalises each row, so drop constant rows or pass center=False."
        )
    unit = (centred if center else h) / lengths
    unit_centred = unit - unit.mean(dim=0)
    _, _, principal = torch.linalg.svd(unit_centred, full_matrices=False)
    metrics: dict[str, float] = {"nrc1": _projection_residual(unit, principal[:n_targets])}

    feature_var = torch.linalg.svdvals(centred) ** 2
    arrays: dict[str, np.ndarray] = {
        "evr_features": (feature_var / feature_var.sum())[:_EVR_TOP].cpu().numpy()
    }
    y_centred = y - y.mean(dim=0)
    target_cov = y_centred.T @ y_centred / num_samples
    arrays["target_cov"] = target_cov.cpu().numpy()

    if weight is not None:
        w = features_matrix(weight, name="regression head W", device=device)
        if w.shape != (n_targets, dim):
            raise InputError(
                f"regression head W has shape {tuple(w.shape)} but ({n_targets}, {dim}) was "
                "expected (targets × feature dimension)."
            )
        _, sv, row_space = torch.linalg.svd(w, full_matrices=False)
        row_space = row_space[sv > sv.max() * max(w.shape) * torch.finfo(torch.float64).eps]
        metrics["nrc2"] = _projection_residual(unit, row_space)
        ww = w @ w.T
        nrc3, gamma, grid, curve = _nrc3_curve(ww, target_cov)
        metrics["nrc3"] = nrc3
        metrics["nrc3_gamma"] = gamma
        eigenvalues, vectors = torch.linalg.eigh(target_cov)
        shape = vectors @ torch.diag(eigenvalues.clamp(min=0).sqrt() - math.sqrt(gamma)) @ vectors.T
        arrays.update(
            {
                "ww": ww.cpu().numpy(),
                "ufm_ww": (shape / shape.norm() * ww.norm()).cpu().numpy(),
                "gamma_grid": grid,
                "nrc3_curve": curve,
            }
        )
    return RegressionResult(metrics=metrics, arrays=arrays)


def regression_metrics(
    features: ArrayLike, targets: ArrayLike, weight: ArrayLike | None = None, **options: Any
) -> dict[str, float]:
    """``nrc1``, ``nrc2``, ``nrc3``, ``nrc3_gamma`` (METRICS.md); see :func:`regression_result`."""
    return regression_result(features, targets, weight, **options).metrics


def ufm_regression_optimum(target_cov: ArrayLike, lambda_h: float, lambda_w: float) -> np.ndarray:
    """WWᵀ at the regression-UFM optimum: √(λ_H/λ_W) (Σ_Y^{1/2} − √(λ_H λ_W) I)_+."""
    cov = torch.as_tensor(np.asarray(target_cov), dtype=torch.float64)
    eigenvalues, vectors = torch.linalg.eigh(cov)
    shrunk = (eigenvalues.clamp(min=0).sqrt() - math.sqrt(lambda_h * lambda_w)).clamp(min=0)
    return (math.sqrt(lambda_h / lambda_w) * vectors @ torch.diag(shrunk) @ vectors.T).numpy()
