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
from ncviz.metrics.conventions import CONVENTIONS, DEFAULT_CONVENTION
from ncviz.metrics.inputs import ArrayLike, as_tensor, features_matrix

_GAMMA_GRID = 257
_EVR_TOP = 64
#: The conventions a regression run takes (ncviz's own, and the regression presets).
REGRESSION_CONVENTIONS = tuple(n for n, c in CONVENTIONS.items() if c.task in ("any", "regression"))
#: NRC1 is reported for the top k = 1 … max(n, NRC2024_COMPONENTS) principal components
NRC2024_COMPONENTS = 10
#: the authors choose γ on an even grid of this many points over [0, λ_min(Σ_Y)]
NRC2024_GAMMA_GRID = 1000


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


def _head_bias(bias: ArrayLike, n_targets: int, device: torch.device) -> torch.Tensor:
    b = as_tensor(bias, "regression head bias").to(device=device, dtype=torch.float64).reshape(-1)
    if b.shape != (n_targets,):
        raise InputError(
            f"regression head bias has {b.shape[0]} entries but the targets have {n_targets}; "
            "pass the bias of the head that reads these features."
        )
    return b


def check_regression_convention(options: Any) -> str:
    """The convention of ``options`` (a name, a CollapseOptions, or None = ncviz's) when it
    applies to regression; a classification-only one is one line naming the valid ones."""
    name = getattr(options, "convention", options) or DEFAULT_CONVENTION
    if name not in REGRESSION_CONVENTIONS:
        raise InputError(
            f"the {name!r} convention is for classification; a regression run takes "
            f"{' or '.join(REGRESSION_CONVENTIONS)}."
        )
    return str(name)


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
    bias: ArrayLike | None = None,
    center: bool = True,
    device: torch.device | str | None = None,
    convention: str = DEFAULT_CONVENTION,
) -> RegressionResult:
    """NRC metrics and plot arrays for features N×d, targets N×n and a head W (n×d) with bias
    b (n; used for the predictions of ``r2``/``mse`` under ``convention="nrc2024"``).

    Without ``weight`` only ``nrc1`` and the feature spectrum are computed. ``convention``:
    "ncviz" (docs/metrics.md) or "nrc2024", the rows of the authors' script
    (:func:`nrc2024_rows`).

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
    if check_regression_convention(convention) == "nrc2024":
        stats = RegressionStatistics(dim, y.shape[1], weight, bias=bias, device=device)
        for _ in range(2):  # the two passes over the rows in memory
            stats.update(h, y)
            if stats.pass_number == 1:
                stats.start_second_pass()
        return nrc2024_result(stats)

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
    # for the nrc2024 convention: Σ (h/‖h‖)(h/‖h‖)ᵀ of the raw rows and Σ (h − h̄)(y − ȳ)ᵀ
    # (absent from runs recorded before them: those rows are then left out, with a warning)
    PAPER_PASS = ("raw_unit_gram", "cross_scatter")

    def __init__(
        self,
        dim: int,
        num_targets: int,
        weight: ArrayLike | None = None,
        *,
        bias: ArrayLike | None = None,
        center: bool = True,
        device: torch.device | str | None = None,
    ) -> None:
        self.device = torch.device(device if device is not None else "cpu")
        _check_dims(num_targets, dim)
        self.dim, self.num_targets, self.center = dim, num_targets, center
        self.weight = (
            None if weight is None else _head_matrix(weight, num_targets, dim, self.device)
        )
        self.bias = None if bias is None else _head_bias(bias, num_targets, self.device)

        def zeros(*shape: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
            return torch.zeros(shape, dtype=dtype, device=self.device)

        self.count = zeros(1, dtype=torch.int64)
        self.feature_sum, self.target_sum = zeros(dim), zeros(num_targets)
        self.unit_sum, self.unit_gram = zeros(dim), zeros(dim, dim)
        self.feature_scatter, self.target_scatter = zeros(dim, dim), zeros(num_targets, num_targets)
        self.zero_rows = zeros(1, dtype=torch.int64)
        self.raw_unit_gram: torch.Tensor | None = zeros(dim, dim)
        self.cross_scatter: torch.Tensor | None = zeros(dim, num_targets)
        self.pass_number = 1

    def pass_tensors(self) -> list[torch.Tensor]:
        """The sums of the current pass (what shards add together)."""
        names = self.FIRST_PASS if self.pass_number == 1 else self._second_pass_names()
        return [getattr(self, name) for name in names]

    def _second_pass_names(self) -> tuple[str, ...]:
        present = tuple(name for name in self.PAPER_PASS if getattr(self, name) is not None)
        return (*self.SECOND_PASS, *present)

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
        if self.raw_unit_gram is not None and self.cross_scatter is not None:
            raw_unit = h / h.norm(dim=1, keepdim=True).clamp(min=torch.finfo(h.dtype).tiny)
            self.raw_unit_gram.addmm_(raw_unit.T, raw_unit)
            self.cross_scatter.addmm_(centred.T, y_centred)

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

    def compute(self, options: Any = None) -> RegressionResult:
        """Every NRC metric and plot array, as :func:`regression_result` gives them; with
        ``options`` (a :class:`~ncviz.metrics.options.CollapseOptions`) whose convention is
        ``nrc2024``, the rows of the authors' script instead (:func:`nrc2024_rows`)."""
        if self.pass_number != 2:
            raise InputError("call start_second_pass() and feed the data again before compute().")
        if int(self.zero_rows):
            raise _zero_rows_error(int(self.zero_rows))
        convention = check_regression_convention(options)
        if convention == "nrc2024":
            return nrc2024_result(self)
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
        names = (*self.FIRST_PASS, *self._second_pass_names())
        state = {name: getattr(self, name) for name in names}
        if self.weight is not None:
            state["weight"] = self.weight
        if self.bias is not None:
            state["bias"] = self.bias
        return state

    @classmethod
    def from_state_dict(
        cls, state: dict[str, torch.Tensor], *, center: bool = True
    ) -> RegressionStatistics:
        """Statistics with both passes done, as :meth:`state_dict` wrote them."""
        dim, num_targets = state["feature_sum"].shape[0], state["target_sum"].shape[0]
        stats = cls(dim, num_targets, state.get("weight"), bias=state.get("bias"), center=center)
        for name in (*cls.FIRST_PASS, *cls.SECOND_PASS):
            setattr(stats, name, state[name].to(getattr(stats, name).dtype))
        for name in cls.PAPER_PASS:
            setattr(stats, name, state[name].to(torch.float64) if name in state else None)
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


def nrc2024_distance(ww: torch.Tensor, target_cov: torch.Tensor, gamma: float) -> float:
    """‖WWᵀ/‖WWᵀ‖_F − A_γ/‖A_γ‖_F‖_F², A_γ = Σ_Y^{1/2} − √γ I (the authors' NRC3 at γ)."""
    eigenvalues, vectors = torch.linalg.eigh(target_cov)
    root = vectors @ torch.diag(eigenvalues.clamp(min=0.0).sqrt()) @ vectors.T
    shape = root - math.sqrt(max(gamma, 0.0)) * torch.eye(len(root), dtype=root.dtype)
    return float(((ww / ww.norm() - shape / shape.norm()) ** 2).sum())


def nrc2024_gamma(ww: torch.Tensor, target_cov: torch.Tensor) -> tuple[float, float]:
    """(γ, NRC3 at γ) minimising the authors' NRC3 over their grid: γ ∈ {λ_min·j/999}, the
    1,000 evenly spaced points of [0, λ_min(Σ_Y)]."""
    top = max(float(torch.linalg.eigvalsh(target_cov)[0]), 0.0)
    grid = np.linspace(0.0, top, NRC2024_GAMMA_GRID)
    curve = [nrc2024_distance(ww, target_cov, float(c)) for c in grid]
    best = int(np.nanargmin(curve))
    return float(grid[best]), float(curve[best])


def nrc2024_result(stats: RegressionStatistics) -> RegressionResult:
    """The rows of the NRC authors' metric script (Andriopoulos et al. 2024, ``compute_NRC1``
    and ``compute_metrics``), from the two passes' sums. With H the raw features (rows h_i),
    H̄ its column mean, V_k the top-k principal directions of H − H̄ and P_k = V_kᵀV_k:

    * ``nrc1_pca{k}`` = (1/N) ‖H − H P_k‖_F² for k = 1 … max(n, 10) (the *raw* rows projected
      on the principal directions of the centred ones); ``nrc1`` = ``nrc1_pca{n}``;
      ``evr{k}`` the explained-variance ratio of direction k
    * ``nrc1n``, ``nrc1nc``: the same at k = n on the rows h_i/‖h_i‖ and
      (h_i − H̄)/‖h_i − H̄‖
    * ``nrc2`` = (1/N) ‖H − H P_W‖_F², P_W the projector on W's rows; ``nrc2n`` on h_i/‖h_i‖
    * ``nrc3`` = ‖WWᵀ/‖WWᵀ‖ − A_γ/‖A_γ‖‖², A_γ = Σ_Y^{1/2} − √γ I, Σ_Y = (1/N) Σ (y − ȳ)(y − ȳ)ᵀ,
      at the γ of their 1,000-point grid that minimises it (``nrc3_gamma``); over a run their
      script fixes γ at the final checkpoint's (:func:`ncviz.analysis.conventions.fix_run_gamma`)
    * ``r2`` = 1 − Σ‖y − ŷ‖² / Σ‖y − ȳ‖², ``mse`` = Σ‖y − ŷ‖²/(N n), ŷ = W h + b

    Their code adds 1e-8 to each row norm; these sums do not (a relative difference below
    1e-8/‖h_i‖).
    """
    n = float(stats.count)
    targets = stats.num_targets
    mean = stats.feature_sum / n
    raw_gram = stats.feature_scatter + n * torch.outer(mean, mean)
    eigenvalues, vectors = torch.linalg.eigh(stats.feature_scatter)
    eigenvalues, principal = eigenvalues.flip(0).clamp(min=0.0), vectors.flip(1).T
    components = min(max(targets, NRC2024_COMPONENTS), stats.dim, int(stats.count))

    def residual(gram: torch.Tensor, basis: torch.Tensor) -> float:
        return float(torch.trace(gram) - ((basis @ gram) * basis).sum()) / n

    rows: dict[str, float] = {}
    warnings: list[str] = []
    evr = eigenvalues / eigenvalues.sum()
    for k in range(1, components + 1):
        rows[f"evr{k}"] = float(evr[k - 1])
    for k in range(1, components + 1):
        rows[f"nrc1_pca{k}"] = residual(raw_gram, principal[:k])
    rows["nrc1"] = rows[f"nrc1_pca{targets}"]
    if stats.raw_unit_gram is not None:
        rows["nrc1n"] = residual(stats.raw_unit_gram, principal[:targets])
    if stats.center:
        rows["nrc1nc"] = residual(stats.unit_gram, principal[:targets])
    arrays: dict[str, np.ndarray] = {
        "evr_features": evr[:_EVR_TOP].cpu().numpy(),
        "target_cov": (stats.target_scatter / n).cpu().numpy(),
    }
    w = stats.weight
    if w is None:
        warnings.append("no regression head W: nrc2, nrc2n, nrc3, r2 and mse are left out.")
        return RegressionResult(rows, arrays, warnings)
    _, sv, row_space = torch.linalg.svd(w, full_matrices=False)
    row_space = row_space[sv > sv.max() * max(w.shape) * torch.finfo(torch.float64).eps]
    rows["nrc2"] = residual(raw_gram, row_space)
    if stats.raw_unit_gram is not None:
        rows["nrc2n"] = residual(stats.raw_unit_gram, row_space)
    ww, target_cov = w @ w.T, stats.target_scatter / n
    undefined = _nrc3_undefined(ww, target_cov)
    if undefined:
        warnings.append(undefined)
    else:
        rows["nrc3_gamma"], rows["nrc3"] = nrc2024_gamma(ww, target_cov)
        arrays["ww"] = ww.cpu().numpy()
    if stats.cross_scatter is None or stats.raw_unit_gram is None:
        warnings.append(
            "this run was recorded before nrc2024's sums were kept: nrc1n, nrc2n, r2 and mse "
            "are left out (record it again to have them)."
        )
        return RegressionResult(rows, arrays, warnings)
    bias = stats.bias if stats.bias is not None else torch.zeros(targets, dtype=torch.float64)
    offset = stats.target_sum / n - w @ mean - bias  # ȳ − W h̄ − b
    residual_sum = (
        n * float(offset @ offset)
        + float(torch.trace(stats.target_scatter))
        - 2.0 * float((w * stats.cross_scatter.T).sum())
        + float(((w @ stats.feature_scatter) * w).sum())
    )
    rows["r2"] = 1.0 - residual_sum / float(torch.trace(stats.target_scatter))
    rows["mse"] = residual_sum / (n * targets)
    return RegressionResult(rows, arrays, warnings)
