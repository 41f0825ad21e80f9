"""The regression unconstrained features model (Andriopoulos et al. 2024).

Free features H ∈ R^{d×N} and a linear head W ∈ R^{n×d} fit targets Y ∈ R^{n×N}:

    (1/2N) ‖W H − Y‖_F²  +  λ_H/(2N) ‖H‖_F²  +  λ_W/2 ‖W‖_F²

whose minimisers satisfy WWᵀ = √(λ_H/λ_W) (Σ^{1/2} − √(λ_H λ_W) I)_+ with Σ = Y Yᵀ/N
(:func:`ncviz.metrics.ufm_regression_optimum`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ncviz.errors import OptionError
from ncviz.metrics import regression_metrics, ufm_regression_optimum
from ncviz.theory.loop import full_batch_descent

ProgressFn = Callable[[int, int, str], None]


@dataclass(frozen=True)
class RegressionUFMSettings:
    targets: int = 3
    dim: int = 16
    samples: int = 200
    correlation: float = 0.5  # off-diagonal correlation of the Gaussian targets
    lambda_h: float = 1e-2
    lambda_w: float = 1e-2
    lr: float = 0.5
    steps: int = 3000
    init_std: float = 0.1
    record_every: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        if not -1 / max(self.targets - 1, 1) < self.correlation < 1:
            raise OptionError("target correlation must keep the covariance positive definite.")


@dataclass
class RegressionUFMResult:
    settings: RegressionUFMSettings
    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    metrics: list[dict[str, float]] = field(default_factory=list)
    ww: np.ndarray | None = None
    ww_optimum: np.ndarray | None = None
    target_cov: np.ndarray | None = None

    def relative_error(self) -> float:
        """‖WWᵀ − optimum‖_F / ‖optimum‖_F at the end of training."""
        return float(np.linalg.norm(self.ww - self.ww_optimum) / np.linalg.norm(self.ww_optimum))


def train_regression_ufm(
    settings: RegressionUFMSettings,
    progress: ProgressFn | None = None,
    on_record: Callable[[RegressionUFMResult], None] | None = None,
) -> RegressionUFMResult:
    s = settings
    generator = torch.Generator().manual_seed(s.seed)
    cov = torch.full((s.targets, s.targets), s.correlation, dtype=torch.float64)
    cov.fill_diagonal_(1.0)
    y = torch.linalg.cholesky(cov) @ torch.randn(
        s.targets, s.samples, generator=generator, dtype=torch.float64
    )
    h = (
        torch.randn(s.dim, s.samples, generator=generator, dtype=torch.float64) * s.init_std
    ).requires_grad_()
    w = (
        torch.randn(s.targets, s.dim, generator=generator, dtype=torch.float64) * s.init_std
    ).requires_grad_()
    # each column of H only sees 1/N of the loss; scaling its step by N makes every sample's
    # features move as fast as W (the same dynamics as per-sample gradient descent)
    optimizer = torch.optim.SGD([{"params": [h], "lr": s.lr * s.samples}, {"params": [w]}], lr=s.lr)
    target_cov = (y @ y.T / s.samples).numpy()
    result = RegressionUFMResult(
        settings=s,
        target_cov=target_cov,
        ww_optimum=ufm_regression_optimum(target_cov, s.lambda_h, s.lambda_w),
    )
    n = s.samples

    def objective() -> tuple[torch.Tensor, None]:
        fit = ((w @ h - y) ** 2).sum() / (2 * n)
        return fit + s.lambda_h / (2 * n) * (h**2).sum() + s.lambda_w / 2 * (w**2).sum(), None

    def record(step: int, loss: torch.Tensor, _extras: None) -> None:
        result.steps.append(step)
        result.loss.append(loss.item())
        result.metrics.append(regression_metrics(h.detach().T, y.T, w.detach()))
        if on_record is not None:
            on_record(result)

    full_batch_descent(objective, optimizer, s.steps, s.record_every, record, progress)
    result.ww = (w @ w.T).detach().numpy()
    return result
