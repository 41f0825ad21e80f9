"""The unconstrained features model (UFM; Mixon et al. 2020, Zhu et al. 2021, Han et al. 2022).

Free features H ∈ R^{d×N} (n per class, N = nK) and a classifier W ∈ R^{K×d} (+ bias b), trained
full batch on

    cross-entropy:  (1/N) Σ_i CE(W h_i + b, y_i) + λ_W/2 ‖W‖² + λ_H/2 ‖H‖² + λ_b/2 ‖b‖²
    MSE:            (1/2N) ‖W H + b1ᵀ − Y‖² + λ_W/2 ‖W‖² + λ_H/2 ‖H‖² + λ_b/2 ‖b‖²

(Zhu et al. 2021's normalisation). Every global minimiser is neural collapse: H's class means form
a simplex ETF, W is self-dual to them, within-class variability is zero.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ncviz.errors import OptionError
from ncviz.metrics import collapse_metrics
from ncviz.theory.loop import full_batch_descent

ProgressFn = Callable[[int, int, str], None]
TRACKED = ("nc1", "nc2_etf_distance", "nc2_equinorm_means", "nc3", "nc4", "accuracy")


@dataclass(frozen=True)
class UFMSettings:
    num_classes: int = 10
    dim: int = 20
    per_class: int = 5
    loss: str = "ce"  # ce | mse
    bias: bool = True
    lambda_w: float = 5e-4
    lambda_h: float = 5e-4
    lambda_b: float = 5e-4
    optimizer: str = "gd"  # gd | adam
    lr: float = 2.0
    steps: int = 4000
    init_std: float = 0.1
    record_every: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        if self.loss not in ("ce", "mse") or self.optimizer not in ("gd", "adam"):
            raise OptionError("loss must be 'ce' or 'mse' and optimizer 'gd' or 'adam'.")
        if self.num_classes < 2 or self.per_class < 2 or self.dim < 1 or self.steps < 1:
            raise OptionError("UFM needs K ≥ 2 classes, ≥ 2 samples per class, d ≥ 1, steps ≥ 1.")


@dataclass
class UFMResult:
    settings: UFMSettings
    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    metrics: list[dict[str, float]] = field(default_factory=list)
    features: np.ndarray | None = None  # N×d
    labels: np.ndarray | None = None
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None

    def final(self) -> dict[str, float]:
        return self.metrics[-1] if self.metrics else {}


def make_optimizer(params: list[torch.Tensor], name: str, lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr) if name == "adam" else torch.optim.SGD(params, lr=lr)


def train_ufm(
    settings: UFMSettings,
    progress: ProgressFn | None = None,
    on_record: Callable[[UFMResult], None] | None = None,
) -> UFMResult:
    """Train the UFM full batch; record the loss and the collapse metrics every few steps."""
    s = settings
    generator = torch.Generator().manual_seed(s.seed)
    n = s.num_classes * s.per_class
    labels = torch.arange(s.num_classes).repeat_interleave(s.per_class)
    h = (
        torch.randn(s.dim, n, generator=generator, dtype=torch.float64) * s.init_std
    ).requires_grad_()
    w = (
        torch.randn(s.num_classes, s.dim, generator=generator, dtype=torch.float64) * s.init_std
    ).requires_grad_()
    b = torch.zeros(s.num_classes, dtype=torch.float64, requires_grad=s.bias)
    params = [h, w] + ([b] if s.bias else [])
    optimizer = make_optimizer(params, s.optimizer, s.lr)
    one_hot = torch.nn.functional.one_hot(labels, s.num_classes).T.to(torch.float64)
    result = UFMResult(settings=s)

    def objective() -> torch.Tensor:
        logits = w @ h + b[:, None]
        if s.loss == "ce":
            fit = torch.nn.functional.cross_entropy(logits.T, labels)
        else:
            fit = ((logits - one_hot) ** 2).sum() / (2 * n)
        reg = s.lambda_w / 2 * (w**2).sum() + s.lambda_h / 2 * (h**2).sum()
        return fit + reg + (s.lambda_b / 2 * (b**2).sum() if s.bias else 0.0)

    def record(step: int, loss: torch.Tensor, _extras: None) -> None:
        metrics = collapse_metrics(h.detach().T, labels, w.detach(), b.detach() if s.bias else None)
        result.steps.append(step)
        result.loss.append(loss.item())
        result.metrics.append({k: metrics[k] for k in TRACKED if k in metrics})
        if on_record is not None:
            on_record(result)

    full_batch_descent(
        lambda: (objective(), None), optimizer, s.steps, s.record_every, record, progress
    )
    result.features = h.detach().T.numpy().copy()
    result.labels = labels.numpy()
    result.weight = w.detach().numpy().copy()
    result.bias = b.detach().numpy().copy() if s.bias else None
    return result
