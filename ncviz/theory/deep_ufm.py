"""The deep unconstrained features model (L-DUFM; Súkeník, Mondelli & Lampert 2023, 2024).

Free features H_1 ∈ R^{d×N} (n per class, N = nK), layers H_{l+1} = ReLU(W_l H_l) for
l = 1..L−1 with W_l ∈ R^{d×d}, output W_L H_L with W_L ∈ R^{K×d}, trained full batch by gradient
descent on

    (1/2N) ‖W_L H_L − Y‖_F²  +  Σ_{l=1..L} λ_{W_l}/2 ‖W_l‖_F²  +  λ_{H_1}/2 ‖H_1‖_F²

with Y the one-hot targets. Deep neural collapse (DNC: every layer's class means of rank K,
orthogonal after the ReLUs) is optimal for L = 2 or K = 2, but not beyond: gradient descent finds
solutions of lower rank and lower loss (Súkeník et al., NeurIPS 2024, arXiv 2405.14468).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import minimize_scalar

from ncviz.errors import OptionError
from ncviz.metrics import collapse_metrics
from ncviz.metrics.spectra import check_centring, numerical_rank
from ncviz.theory.loop import full_batch_descent

ProgressFn = Callable[[int, int, str], None]


@dataclass(frozen=True)
class DeepUFMSettings:
    """Defaults are the paper's Fig. 2 setting (K = 10, L = 4, width 30, λ = 0.004, lr 0.5)."""

    num_classes: int = 10
    depth: int = 4  # L: number of weight matrices
    width: int = 30
    per_class: int = 1
    lambda_w: float | tuple[float, ...] = 0.004  # one value, or one per layer
    lambda_h: float = 0.004
    lr: float = 0.5
    steps: int = 8000
    init_std: float = 0.1
    record_every: int = 200
    tau: float = 1e-2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.depth < 2 or self.num_classes < 2 or self.width < 1 or self.per_class < 1:
            raise OptionError("the deep UFM needs L ≥ 2 layers, K ≥ 2 classes and width ≥ 1.")
        if not isinstance(self.lambda_w, int | float) and len(self.lambda_w) != self.depth:
            raise OptionError(f"give one λ_W or {self.depth} (one per layer).")

    def layer_lambdas(self) -> list[float]:
        if isinstance(self.lambda_w, int | float):
            return [float(self.lambda_w)] * self.depth
        return [float(x) for x in self.lambda_w]


@dataclass
class DeepUFMResult:
    """History (every ``record_every`` steps) and the final class-mean matrices.

    Layer l = 1..L: ``post`` is H_l (H_1 free, then after each ReLU), ``pre`` is W_{l−1} H_{l−1}
    (absent for l = 1). Ranks are numerical ranks (s_k > τ s_1) of the class-mean matrices M_l
    (d × K): ``ranks_post``/``ranks_pre`` of M_l itself (uncentred, the paper's convention: deep
    neural collapse has rank K), ``*_centred`` of M_l with the mean over classes removed (the
    Spectra page's ``rank_means`` convention: rank K − 1 at collapse); :meth:`ranks` picks one.
    """

    settings: DeepUFMSettings
    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    fit: list[float] = field(default_factory=list)
    regulariser: list[float] = field(default_factory=list)
    ranks_post: list[list[int]] = field(default_factory=list)
    ranks_pre: list[list[int]] = field(default_factory=list)
    ranks_post_centred: list[list[int]] = field(default_factory=list)
    ranks_pre_centred: list[list[int]] = field(default_factory=list)
    dnc1: list[list[float]] = field(default_factory=list)
    means_post: list[np.ndarray] = field(default_factory=list)
    means_pre: list[np.ndarray] = field(default_factory=list)
    dnc_reference: float = math.nan

    def final_ranks(self) -> list[int]:
        return self.ranks_post[-1]

    def ranks(self, centring: str = "uncentred", pre: bool = False) -> list[list[int]]:
        """The rank history (one list of per-layer ranks per record) in one convention
        (:data:`~ncviz.metrics.spectra.MEANS_CENTRING`), after (or ``pre``: before) the ReLUs."""
        if check_centring(centring) == "centred":
            return self.ranks_pre_centred if pre else self.ranks_post_centred
        return self.ranks_pre if pre else self.ranks_post

    def singular_values(self, centring: str = "uncentred") -> list[np.ndarray]:
        """Singular values of each layer's final class-mean matrix M_l (d × K)."""
        return [np.linalg.svd(m, compute_uv=False) for m in self.means(centring)]

    def means(self, centring: str = "uncentred") -> list[np.ndarray]:
        """The final class-mean matrices M_l (d × K), centred over the classes or not."""
        if check_centring(centring) == "centred":
            return [m - m.mean(axis=1, keepdims=True) for m in self.means_post]
        return list(self.means_post)


def dnc_reference_loss(
    num_classes: int, depth: int, lambda_w: Sequence[float], lambda_h: float, per_class: int = 1
) -> tuple[float, float]:
    """Loss of the best DNC configuration (rank K at every layer) and its output scale t.

    Within DNC, H_1 = s·Q (orthonormal class directions, n copies per class) and each W_l maps
    one layer's orthogonal frame onto the next with scale r_l; the output is t·Y with
    t = s ∏ r_l. The fit term is (1 − t)²/2, the regulariser (K/2)(n λ_H s² + Σ λ_l r_l²), which
    for fixed t is smallest when every weighted factor is equal (AM–GM):
    (K/2)(L + 1)(n λ_H ∏ λ_l)^{1/(L+1)} t^{2/(L+1)}. The remaining 1-D problem in t is solved
    numerically.
    """
    factors = depth + 1
    weight = (per_class * lambda_h * math.prod(lambda_w)) ** (1.0 / factors)

    def loss(t: float) -> float:
        return (1.0 - t) ** 2 / 2 + num_classes / 2 * factors * weight * t ** (2.0 / factors)

    best = minimize_scalar(loss, bounds=(0.0, 1.0), method="bounded", options={"xatol": 1e-12})
    t = float(best.x) if best.fun < loss(0.0) else 0.0
    return loss(t), t


def _class_means(h: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    sums = torch.zeros(h.shape[0], num_classes, dtype=h.dtype).index_add_(1, labels, h)
    return sums / torch.bincount(labels, minlength=num_classes).to(h.dtype)


def train_deep_ufm(
    settings: DeepUFMSettings,
    progress: ProgressFn | None = None,
    on_record: Callable[[DeepUFMResult], None] | None = None,
) -> DeepUFMResult:
    s = settings
    lambdas = s.layer_lambdas()
    generator = torch.Generator().manual_seed(s.seed)
    n = s.num_classes * s.per_class
    labels = torch.arange(s.num_classes).repeat_interleave(s.per_class)
    targets = torch.nn.functional.one_hot(labels, s.num_classes).T.to(torch.float64)

    def init(*shape: int) -> torch.Tensor:
        tensor = torch.randn(*shape, generator=generator, dtype=torch.float64) * s.init_std
        return tensor.requires_grad_()

    h1 = init(s.width, n)
    weights = [init(s.width, s.width) for _ in range(s.depth - 1)] + [init(s.num_classes, s.width)]
    optimizer = torch.optim.SGD([h1, *weights], lr=s.lr)
    result = DeepUFMResult(settings=s)
    result.dnc_reference, _ = dnc_reference_loss(
        s.num_classes, s.depth, lambdas, s.lambda_h, s.per_class
    )

    def forward() -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        post, pre = [h1], []
        for w in weights[:-1]:
            z = w @ post[-1]
            pre.append(z)
            post.append(torch.relu(z))
        fit = ((weights[-1] @ post[-1] - targets) ** 2).sum() / (2 * n)
        reg = s.lambda_h / 2 * (h1**2).sum() + sum(
            lam / 2 * (w**2).sum() for lam, w in zip(lambdas, weights)
        )
        return fit, reg, post, pre

    def record(step: int, loss: torch.Tensor, extras: tuple) -> None:
        fit, reg, post, pre = extras
        _record(result, step, fit, reg, post, pre, labels)
        if on_record is not None:
            on_record(result)

    def objective() -> tuple[torch.Tensor, tuple]:
        fit, reg, post, pre = forward()
        return fit + reg, (fit, reg, post, pre)

    full_batch_descent(objective, optimizer, s.steps, s.record_every, record, progress)
    return result


def _layer_ranks(means: list[torch.Tensor], tau: float, centred: bool = False) -> list[int]:
    """Numerical rank of each class-mean matrix M_l (d × K), or of M_l less its mean over the
    classes (``centred``)."""
    return [
        numerical_rank(torch.linalg.svdvals(m - m.mean(dim=1, keepdim=True) if centred else m), tau)
        for m in means
    ]


def _record(
    result: DeepUFMResult,
    step: int,
    fit: torch.Tensor,
    reg: torch.Tensor,
    post: list[torch.Tensor],
    pre: list[torch.Tensor],
    labels: torch.Tensor,
) -> None:
    s = result.settings
    with torch.no_grad():
        means_post = [_class_means(h, labels, s.num_classes) for h in post]
        means_pre = [_class_means(z, labels, s.num_classes) for z in pre]
        result.steps.append(step)
        result.fit.append(fit.item())
        result.regulariser.append(reg.item())
        result.loss.append((fit + reg).item())
        result.ranks_post.append(_layer_ranks(means_post, s.tau))
        result.ranks_pre.append(_layer_ranks(means_pre, s.tau))
        result.ranks_post_centred.append(_layer_ranks(means_post, s.tau, centred=True))
        result.ranks_pre_centred.append(_layer_ranks(means_pre, s.tau, centred=True))
        if s.per_class > 1:
            result.dnc1.append([collapse_metrics(h.T, labels).get("nc1", math.nan) for h in post])
        result.means_post = [m.numpy().copy() for m in means_post]
        result.means_pre = [m.numpy().copy() for m in means_pre]
