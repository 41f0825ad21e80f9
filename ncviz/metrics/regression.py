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
from collections.abc import Callable
from dataclasses import dataclass, field
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
    warnings: list[str] = field(default_factory=list)


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


def _head_matrix(weight: ArrayLike, n_targets: int, dim: int, device: torch.device) -> torch.Tensor:
    w = features_matrix(weight, name="regression head W", device=device)
    if w.shape != (n_targets, dim):
        raise InputError(
            f"regression head W has shape {tuple(w.shape)} but ({n_targets}, {dim}) was "
            "expected (targets × feature dimension)."
        )
    return w


def _check_dims(n_targets: int, dim: int) -> None:
    if n_targets > dim:
        raise InputError(
            f"targets have {n_targets} dimensions but features only {dim}; NRC needs n ≤ d."
        )


def _zero_rows_error(count: int) -> InputError:
    return InputError(
        f"{count} feature rows equal the feature mean (zero length after centring); NRC "
        "normalises each row, so drop constant rows or pass center=False."
    )


def _nrc_result(
    residual: Callable[[torch.Tensor], float],
    principal: torch.Tensor,
    feature_var: torch.Tensor,
    target_cov: torch.Tensor,
    w: torch.Tensor | None,
) -> RegressionResult:
    """NRC metrics from a projection-residual function of ĥ, its principal directions (rows,
    descending), the feature variances along the PCs, Σ_Y and the head W (or None)."""
    n_targets = target_cov.shape[0]
    metrics: dict[str, float] = {"nrc1": residual(principal[:n_targets])}
    arrays: dict[str, np.ndarray] = {
        "evr_features": (feature_var / feature_var.sum())[:_EVR_TOP].cpu().numpy(),
        "target_cov": target_cov.cpu().numpy(),
    }
    if w is not None:
        _, sv, row_space = torch.linalg.svd(w, full_matrices=False)
        row_space = row_space[sv > sv.max() * max(w.shape) * torch.finfo(torch.float64).eps]
        metrics["nrc2"] = residual(row_space)
        ww = w @ w.T
        undefined = _nrc3_undefined(ww, target_cov)
        if undefined:
            metrics["nrc3"] = metrics["nrc3_gamma"] = math.nan
            return RegressionResult(metrics=metrics, arrays=arrays, warnings=[undefined])
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


def _nrc3_undefined(ww: torch.Tensor, target_cov: torch.Tensor) -> str:
    """Why NRC3 has no value (both of its matrices must be non-zero), or ""."""
    if float(ww.norm()) == 0.0:
        return "the regression head W is zero: nrc3 is undefined (NaN)."
    if float(target_cov.norm()) == 0.0:
        return "the targets are constant (zero covariance): nrc3 is undefined (NaN)."
    return ""


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

    >>> import torch
    >>> h = torch.tensor([[1.0, 0.0], [2.0, 0.0], [-1.0, 0.0], [-2.0, 0.0]])
    >>> y = torch.tensor([[1.0], [2.0], [-1.0], [-2.0]])
    >>> m = regression_metrics(h, y, torch.tensor([[1.0, 0.0]]))
    >>> round(m["nrc1"], 12), round(m["nrc2"], 12), round(m["nrc3"], 12)
    (0.0, 0.0, 0.0)
    """
    if device is None:
        device = features.device if isinstance(features, torch.Tensor) else "cpu"
    h = features_matrix(features, device=device)
    num_samples, dim = h.shape
    if num_samples < 2:
        raise InputError("regression metrics need at least 2 samples.")
    y = _targets_matrix(targets, num_samples).to(device)
    _check_dims(y.shape[1], dim)

    centred = h - h.mean(dim=0)
    lengths = (centred if center else h).norm(dim=1, keepdim=True)
    if bool((lengths == 0).any()):
        raise _zero_rows_error(int((lengths == 0).sum()))
    unit = (centred if center else h) / lengths
    unit_centred = unit - unit.mean(dim=0)
    _, _, principal = torch.linalg.svd(unit_centred, full_matrices=False)
    y_centred = y - y.mean(dim=0)
    w = None if weight is None else _head_matrix(weight, y.shape[1], dim, h.device)
    return _nrc_result(
        lambda basis: _projection_residual(unit, basis),
        principal,
        torch.linalg.svdvals(centred) ** 2,
        y_centred.T @ y_centred / num_samples,
        w,
    )


class RegressionStatistics:
    """Two-pass streaming statistics for the NRC metrics; memory O(d² + n²), not O(N·d).

    Pass 1 sums h and y (the means h̄, ȳ); pass 2, around them, sums ĥ = (h − h̄)/‖h − h̄‖,
    ĥĥᵀ, (h − h̄)(h − h̄)ᵀ and (y − ȳ)(y − ȳ)ᵀ. Since (1/N)Σ‖ĥ − Pĥ‖² = (Tr G − Tr(P G))/N
    with G = Σ ĥĥᵀ, every metric of :func:`regression_result` follows from these sums (equal to
    ~1e-12). Shards merge by adding :meth:`pass_tensors`.

    >>> import torch
    >>> h = torch.randn(100, 8, dtype=torch.float64)
    >>> y = h[:, :2] @ torch.randn(2, 2, dtype=torch.float64)
    >>> stats = RegressionStatistics(dim=8, num_targets=2)
    >>> for _ in range(2):
    ...     for k in range(0, 100, 32):
    ...         stats.update(h[k : k + 32], y[k : k + 32])
    ...     if stats.pass_number == 1:
    ...         stats.start_second_pass()
    >>> a = stats.compute().metrics["nrc1"]; b = regression_metrics(h, y)["nrc1"]
    >>> abs(a - b) < 1e-12
    True
    """

    FIRST_PASS = ("count", "feature_sum", "target_sum")
    SECOND_PASS = ("unit_sum", "unit_gram", "feature_scatter", "target_scatter", "zero_rows")

    def __init__(
        self,
        dim: int,
        num_targets: int,
        weight: ArrayLike | None = None,
        *,
        center: bool = True,
        device: torch.device | str | None = None,
    ) -> None:
        self.device = torch.device(device if device is not None else "cpu")
        _check_dims(num_targets, dim)
        self.dim, self.num_targets, self.center = dim, num_targets, center
        self.weight = (
            None if weight is None else _head_matrix(weight, num_targets, dim, self.device)
        )

        def zeros(*shape: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
            return torch.zeros(shape, dtype=dtype, device=self.device)

        self.count = zeros(1, dtype=torch.int64)
        self.feature_sum, self.target_sum = zeros(dim), zeros(num_targets)
        self.unit_sum, self.unit_gram = zeros(dim), zeros(dim, dim)
        self.feature_scatter, self.target_scatter = zeros(dim, dim), zeros(num_targets, num_targets)
        self.zero_rows = zeros(1, dtype=torch.int64)
        self.pass_number = 1

    def pass_tensors(self) -> list[torch.Tensor]:
        """The sums of the current pass (what shards add together)."""
        names = self.FIRST_PASS if self.pass_number == 1 else self.SECOND_PASS
        return [getattr(self, name) for name in names]

    def update(self, features: ArrayLike, targets: ArrayLike, *, check_finite: bool = True) -> None:
        """Add a batch (N×d features, N×n or N targets) to the current pass; ``check_finite``
        as for :meth:`CollapseStatistics.update`."""
        h = features_matrix(features, dim=self.dim, device=self.device, check_finite=check_finite)
        y = _targets_matrix(targets, h.shape[0]).to(self.device)
        if y.shape[1] != self.num_targets:
            raise InputError(
                f"targets have {y.shape[1]} columns; these statistics expect {self.num_targets}."
            )
        if self.pass_number == 1:
            self.count += h.shape[0]
            self.feature_sum += h.sum(dim=0)
            self.target_sum += y.sum(dim=0)
            return
        n = self.count.to(torch.float64)
        centred = h - self.feature_sum / n
        lengths = (centred if self.center else h).norm(dim=1, keepdim=True)
        self.zero_rows += int((lengths == 0).sum())
        unit = (centred if self.center else h) / lengths.clamp(min=torch.finfo(h.dtype).tiny)
        y_centred = y - self.target_sum / n
        self.unit_sum += unit.sum(dim=0)
        self.unit_gram.addmm_(unit.T, unit)
        self.feature_scatter.addmm_(centred.T, centred)
        self.target_scatter.addmm_(y_centred.T, y_centred)

    def require_finite_sums(self, name: str = "features") -> None:
        """Raise if NaN/Inf reached the current pass's sums (after ``check_finite=False``)."""
        current = self.feature_sum if self.pass_number == 1 else self.feature_scatter
        if not bool(torch.isfinite(current).all()):
            raise InputError(
                f"{name}: the features contain NaN or Inf; check the model for overflow (e.g. "
                "use float32 instead of float16) or the data for NaN."
            )

    def start_second_pass(self) -> None:
        """Freeze the means; later ``update`` calls accumulate the second pass."""
        if self.pass_number != 1:
            raise InputError("the second pass has already started.")
        if int(self.count) < 2:
            raise InputError("regression metrics need at least 2 samples.")
        self.pass_number = 2

    def merge(self, other: RegressionStatistics) -> RegressionStatistics:
        """Add another shard's sums of the same pass in place; returns self."""
        if other.pass_number != self.pass_number:
            raise InputError(
                "cannot merge statistics from different passes; merge after each pass."
            )
        for mine, theirs in zip(self.pass_tensors(), other.pass_tensors()):
            mine += theirs.to(mine.device)
        return self

    def compute(self) -> RegressionResult:
        """Every NRC metric and plot array, as :func:`regression_result` gives them."""
        if self.pass_number != 2:
            raise InputError("call start_second_pass() and feed the data again before compute().")
        if int(self.zero_rows):
            raise _zero_rows_error(int(self.zero_rows))
        n = float(self.count)
        gram = self.unit_gram
        covariance = gram - torch.outer(self.unit_sum, self.unit_sum) / n
        _, vectors = torch.linalg.eigh(covariance)
        principal = vectors.flip(1).T  # rows, by descending variance

        def residual(basis: torch.Tensor) -> float:
            return float(torch.trace(gram) - ((basis @ gram) * basis).sum()) / n

        rank = min(int(self.count), self.dim)
        feature_var = torch.linalg.eigvalsh(self.feature_scatter).flip(0)[:rank].clamp(min=0)
        return _nrc_result(residual, principal, feature_var, self.target_scatter / n, self.weight)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Every sum (both passes done) and W, for saving; see :meth:`from_state_dict`."""
        state = {name: getattr(self, name) for name in (*self.FIRST_PASS, *self.SECOND_PASS)}
        if self.weight is not None:
            state["weight"] = self.weight
        return state

    @classmethod
    def from_state_dict(
        cls, state: dict[str, torch.Tensor], *, center: bool = True
    ) -> RegressionStatistics:
        """Statistics with both passes done, as :meth:`state_dict` wrote them."""
        dim, num_targets = state["feature_sum"].shape[0], state["target_sum"].shape[0]
        stats = cls(dim, num_targets, state.get("weight"), center=center)
        for name in (*cls.FIRST_PASS, *cls.SECOND_PASS):
            setattr(stats, name, state[name].to(getattr(stats, name).dtype))
        stats.pass_number = 2
        return stats


def regression_metrics(
    features: ArrayLike, targets: ArrayLike, weight: ArrayLike | None = None, **options: Any
) -> dict[str, float]:
    """``nrc1``, ``nrc2``, ``nrc3``, ``nrc3_gamma`` (docs/metrics.md); see ``regression_result``."""
    return regression_result(features, targets, weight, **options).metrics


def ufm_regression_optimum(target_cov: ArrayLike, lambda_h: float, lambda_w: float) -> np.ndarray:
    """WWᵀ at the regression-UFM optimum: √(λ_H/λ_W) (Σ_Y^{1/2} − √(λ_H λ_W) I)_+."""
    cov = torch.as_tensor(np.asarray(target_cov), dtype=torch.float64)
    eigenvalues, vectors = torch.linalg.eigh(cov)
    shrunk = (eigenvalues.clamp(min=0).sqrt() - math.sqrt(lambda_h * lambda_w)).clamp(min=0)
    return (math.sqrt(lambda_h / lambda_w) * vectors @ torch.diag(shrunk) @ vectors.T).numpy()
