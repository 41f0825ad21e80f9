"""Deep Recursive Feature Machines: collapse from the AGOP alone (Beaglehole, Súkeník, Mondelli
& Belkin 2024, arXiv 2402.13728).

At every layer l the features X_l (rows normalised to the unit sphere) are fitted by kernel ridge
regression with the Laplace kernel k_M(x, z) = exp(−‖x − z‖_M / L), ‖u‖_M = √(uᵀMu); M is then
replaced by the AGOP of that kernel predictor over the training points (closed form, below,
scaled to spectral norm 1), a few times (the RFM iteration). The next layer is a random-feature
map of the AGOP projection: X_{l+1} = ReLU(X_l M_l^{1/2} W_l), W_l with N(0, 1/d) entries. The
control applies the same random features without M^{1/2}: it does not collapse.

Predictor f(x) = Σ_i α_i k_M(x, x_i) (α = (K + λI)⁻¹Y); its Jacobian at x is
J(x) = −(1/L) Σ_i α_i (k_M(x, x_i)/‖x − x_i‖_M) (x − x_i)ᵀ M (terms with x = x_i are 0), and the
AGOP is (1/n) Σ_j J(x_j)ᵀ J(x_j).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ncviz.errors import OptionError
from ncviz.load import load_dataset
from ncviz.metrics import collapse_metrics


@dataclass(frozen=True)
class DeepRFMSettings:
    data: str = "digits"  # "digits" or "gaussian"
    num_classes: int = 10
    per_class: int = 20
    depth: int = 6
    width: int = 256  # random features per layer
    bandwidth: float = 1.0  # L of the Laplace kernel
    ridge: float = 1e-3
    iterations: int = 3  # RFM iterations (kernel fit → AGOP) per layer
    seed: int = 0


@dataclass
class DeepRFMResult:
    """Per layer (input of layer 1 = the data): NC1 (Tr Σ_W/Tr Σ_B) and the ETF distance of the
    features, for Deep RFM and for the random-features-only control."""

    settings: DeepRFMSettings
    nc1: list[float] = field(default_factory=list)
    nc2: list[float] = field(default_factory=list)
    nc1_features_only: list[float] = field(default_factory=list)
    nc2_features_only: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)  # of the layer's kernel predictor


def laplace_kernel(x: torch.Tensor, z: torch.Tensor, m: torch.Tensor, bandwidth: float):
    """exp(−‖x_i − z_j‖_M / L) for every pair (n×m)."""
    xm = x @ m
    sq = (xm * x).sum(1)[:, None] + ((z @ m) * z).sum(1)[None, :] - 2.0 * xm @ z.T
    return torch.exp(-sq.clamp(min=0.0).sqrt() / bandwidth)


def kernel_agop(
    x: torch.Tensor, alpha: torch.Tensor, m: torch.Tensor, bandwidth: float
) -> torch.Tensor:
    """The AGOP over the training points x of f(·) = Σ_i α_i k_M(·, x_i) (closed form above).

    The differences x_j − x_i are formed directly (in row blocks of ≈ 2²² numbers), not as
    x_j Σ_i w_ji α_i − Σ_i w_ji α_i x_i, which cancels."""
    xm = x @ m
    norms = (xm * x).sum(1)
    r = (norms[:, None] + norms[None, :] - 2.0 * xm @ x.T).clamp(min=0.0).sqrt()
    weight = torch.where(r > 0, torch.exp(-r / bandwidth) / r.clamp(min=1e-300), 0.0)
    n, d = x.shape
    block = max(1, (1 << 22) // max(1, n * d))
    total = torch.zeros(d, d, dtype=x.dtype, device=x.device)
    for start in range(0, n, block):
        rows = slice(start, start + block)
        diff = x[rows, None, :] - x[None, :, :]  # b×n×d
        jac = -torch.einsum("ji,ic,jid->jcd", weight[rows], alpha, diff) @ m / bandwidth
        total += torch.einsum("ncd,nce->de", jac, jac)
    return total / n


def _data(settings: DeepRFMSettings) -> tuple[torch.Tensor, torch.Tensor]:
    if settings.data == "digits":
        if not 2 <= settings.num_classes <= 10:
            raise OptionError("digits have 2 to 10 classes.")
        data = load_dataset("builtin:digits")
        rows = [
            torch.nonzero(data.labels == c).flatten()[: settings.per_class]
            for c in range(settings.num_classes)
        ]
        index = torch.cat(rows)
        return data.inputs[index].double(), data.labels[index]
    if settings.data == "gaussian":
        spec = (
            f"builtin:gaussian?classes={settings.num_classes}&dim=32&n={settings.per_class}"
            f"&seed={settings.seed}"
        )
        data = load_dataset(spec)
        return data.inputs.double(), data.labels
    raise OptionError(f"data must be 'digits' or 'gaussian', got {settings.data!r}.")


def _sqrt_psd(m: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh((m + m.T) / 2)
    return (vectors * values.clamp(min=0.0).sqrt()) @ vectors.T


def run_deep_rfm(
    settings: DeepRFMSettings,
    progress: Callable[[int, int, str], None] | None = None,
    on_record: Callable[[DeepRFMResult], None] | None = None,
) -> DeepRFMResult:
    """Deep RFM and its random-features control, layer by layer (``on_record`` after each)."""
    if settings.depth < 1 or settings.width < 2 or settings.per_class < 2:
        raise OptionError("depth ≥ 1, width ≥ 2 and per_class ≥ 2 are needed.")
    x, labels = _data(settings)
    targets = torch.nn.functional.one_hot(labels, settings.num_classes).double()
    generator = torch.Generator().manual_seed(settings.seed)
    result = DeepRFMResult(settings)
    rfm, control = x, x
    for layer in range(settings.depth):
        rfm = rfm / rfm.norm(dim=1, keepdim=True).clamp(min=1e-300)
        control = control / control.norm(dim=1, keepdim=True).clamp(min=1e-300)
        for features, nc1, nc2 in (
            (rfm, result.nc1, result.nc2),
            (control, result.nc1_features_only, result.nc2_features_only),
        ):
            metrics = collapse_metrics(features, labels)
            nc1.append(float(metrics["nc1_trace_ratio"]))
            nc2.append(float(metrics["nc2_etf_distance"]))
        m = torch.eye(rfm.shape[1], dtype=torch.float64)
        eye = torch.eye(len(rfm), dtype=torch.float64)
        for _ in range(settings.iterations):
            kernel = laplace_kernel(rfm, rfm, m, settings.bandwidth)
            alpha = torch.linalg.solve(kernel + settings.ridge * eye, targets)
            m = kernel_agop(rfm, alpha, m, settings.bandwidth)
            m = m / torch.linalg.matrix_norm(m, 2).clamp(min=1e-300)
        kernel = laplace_kernel(rfm, rfm, m, settings.bandwidth)
        alpha = torch.linalg.solve(kernel + settings.ridge * eye, targets)
        result.train_accuracy.append(float(((kernel @ alpha).argmax(1) == labels).double().mean()))
        if on_record is not None:
            on_record(result)
        if progress is not None:
            progress(layer + 1, settings.depth, f"layer {layer + 1}/{settings.depth}")
        if layer + 1 < settings.depth:
            d = rfm.shape[1]
            w = torch.randn(d, settings.width, generator=generator, dtype=torch.float64) / d**0.5
            rfm = torch.relu(rfm @ _sqrt_psd(m) @ w)
            control = torch.relu(control @ w)
    return result
