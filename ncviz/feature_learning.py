"""Why collapse happens and what it buys: the AGOP and the neural feature ansatz (Beaglehole,
Súkeník, Mondelli & Belkin 2024, arXiv 2402.13728), the stage decomposition of a linear layer, and
geometric complexity (Munn, Dherin & Gonzalvo 2024, arXiv 2405.15706).

- ``agop``: (1/N) Σ_i J_iᵀ J_i, J_i = ∂f(x_i)/∂a_l(x_i), the Jacobian of the network's outputs
  with respect to the input a_l of module l (the tail of the network after l's input).
- ``nfa_correlation``: Pearson correlation of the flattened W_lᵀW_l and AGOP^power; the neural
  feature ansatz says they are proportional for power ½ (``agop_nfa_corr_sqrt``; power 1 is
  ``agop_nfa_corr``).
- ``stage_decomposition``: NC1 (Tr Σ_W / Tr Σ_B) of a linear layer's input, after S Vᵀ, after
  U S Vᵀ (+ b) and after the block's nonlinearity, with W = U S Vᵀ: the three stages of the paper.
- ``geometric_complexity``: (1/N) Σ_i ‖∂e(x_i)/∂x_i‖_F², e the embedding (the classifier's input by
  default), exact or by Hutchinson's estimator; ``geometric_collapse`` is the CDNV with each
  class's mean GC in place of its variance.

Jacobians are formed in the model's dtype with batched vector–Jacobian products (the samples of a
batch are independent in eval mode, so one backward pass of Σ_i vᵀf(x_i) gives every J_iᵀv) and
accumulated in float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ncviz.errors import InputError, OptionError
from ncviz.extract.layers import INPUT_SUFFIX, first_tensor, hook_layer, resolve_module
from ncviz.metrics import collapse_metrics
from ncviz.metrics.conventions import DEFAULT_CONVENTION
from ncviz.metrics.geometry import geometry_metrics


def _evaluating(model: nn.Module) -> bool:
    was = model.training
    model.eval()
    return was


def _rows(inputs: torch.Tensor, batch_size: int) -> list[slice]:
    if len(inputs) == 0:
        raise InputError("no inputs were given.")
    return [slice(i, i + batch_size) for i in range(0, len(inputs), batch_size)]


def _projection(count: int, outputs: int | None, seed: int, dtype, device) -> torch.Tensor:
    """The C×C identity, or a k×C Gaussian sketch P with E[PᵀP] = I (entries N(0, 1/k))."""
    if outputs is None or outputs >= count:
        return torch.eye(count, dtype=dtype, device=device)
    generator = torch.Generator().manual_seed(seed)
    sketch = torch.randn(outputs, count, generator=generator, dtype=torch.float64)
    return (sketch / math.sqrt(outputs)).to(device=device, dtype=dtype)


def _vjps(output: torch.Tensor, wrt: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """J_iᵀv for each of k vectors and every sample i: k × B × (wrt's dims). ``vectors`` is k×D
    (the same v for every sample) or k×B×D (one per sample)."""
    flat = output.reshape(len(output), -1)
    grads = [
        torch.autograd.grad(flat, wrt, v.expand_as(flat), retain_graph=True)[0] for v in vectors
    ]
    return torch.stack(grads)


def agop(
    model: nn.Module,
    inputs: torch.Tensor,
    layer: str,
    *,
    outputs: int | None = None,
    batch_size: int = 256,
    seed: int = 0,
) -> torch.Tensor:
    """The d_in × d_in AGOP of ``model``'s outputs with respect to the input of module ``layer``.

    ``outputs``: for many classes, a random Gaussian projection of the C outputs to this many
    (P with entries N(0, 1/k): E[PᵀP] = I, so the estimate is unbiased). A convolution's input
    is flattened (d_in = channels × height × width). Float64 accumulation.

    >>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    >>> g = agop(net, torch.randn(5, 3, dtype=torch.float64), "2")
    >>> bool(torch.allclose(g, net[2].weight.T @ net[2].weight))  # a linear tail: J = W
    True
    """
    name = layer.removesuffix(INPUT_SUFFIX)
    module, _ = resolve_module(model, name)
    held: dict[str, torch.Tensor] = {}

    def leaf(_module: nn.Module, args: tuple) -> tuple:
        tensor = first_tensor(args).detach().requires_grad_(True)
        held["a"] = tensor
        return (tensor, *args[1:])

    handle = module.register_forward_pre_hook(leaf)
    was_training = _evaluating(model)
    total: torch.Tensor | None = None
    try:
        for rows in _rows(inputs, batch_size):
            with torch.enable_grad():
                out = first_tensor(model(inputs[rows]))
                count = out.reshape(len(out), -1).shape[1]
                projection = _projection(count, outputs, seed, out.dtype, out.device)
                grads = _vjps(out, held["a"], projection)  # k × B × d_in…
            jac = grads.reshape(grads.shape[0], grads.shape[1], -1).double()
            part = torch.einsum("kbi,kbj->ij", jac, jac)
            total = part if total is None else total + part
    finally:
        handle.remove()
        model.train(was_training)
    return total / len(inputs)


def _matrix_power(matrix: torch.Tensor, power: float) -> torch.Tensor:
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * values.clamp(min=0.0) ** power) @ vectors.T


def nfa_correlation(agop_matrix: torch.Tensor, weight: torch.Tensor, power: float = 0.5) -> float:
    """Pearson correlation of the flattened WᵀW and AGOP^power (the neural feature ansatz).

    >>> w = torch.randn(6, 4, dtype=torch.float64)
    >>> round(nfa_correlation((w.T @ w) @ (w.T @ w), w, power=0.5), 6)
    1.0
    """
    gram = (weight.detach().double().T @ weight.detach().double()).flatten()
    target = _matrix_power(agop_matrix.double(), power).flatten()
    if gram.shape != target.shape:
        raise InputError(
            f"WᵀW is {weight.shape[1]}×{weight.shape[1]} but the AGOP is "
            f"{agop_matrix.shape[0]}×{agop_matrix.shape[1]}; use the AGOP at this layer's input."
        )
    return float(torch.corrcoef(torch.stack([gram, target]))[0, 1])


@dataclass(frozen=True)
class Stages:
    """NC1 (Tr Σ_W / Tr Σ_B) of one linear layer's stages, in order."""

    layer: str
    input: float
    svt: float
    usvt: float
    activation: float | None

    def as_dict(self) -> dict[str, float]:
        values = {"input": self.input, "S Vᵀ": self.svt, "U S Vᵀ": self.usvt}
        if self.activation is not None:
            values["nonlinearity"] = self.activation
        return values


def _trace_ratio(
    features: torch.Tensor, labels: torch.Tensor, convention: str = DEFAULT_CONVENTION
) -> float:
    """Tr Σ_W / Tr Σ_B of a stage; under ``rfm2024`` the Deep RFM code's NC1 (its Σ_W divided
    by C·N: this ratio over C; :mod:`ncviz.metrics.conventions`)."""
    h, y = features.double().cpu(), labels.cpu()
    if convention == "rfm2024":
        return float(collapse_metrics(h, y, convention="rfm2024")["nc1"])
    return float(collapse_metrics(h, y)["nc1_trace_ratio"])


def stage_decomposition(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    layer: str,
    convention: str = DEFAULT_CONVENTION,
) -> Stages:
    """NC1 of a linear layer's input h, of h V S (after S Vᵀ), of h Wᵀ + b (after U S Vᵀ) and of
    the output of the block that holds the layer (after its nonlinearity), W = U S Vᵀ; Tr Σ_W /
    Tr Σ_B, or the Deep RFM code's NC1 under ``convention="rfm2024"``."""
    module, _ = resolve_module(model, layer.removesuffix(INPUT_SUFFIX))
    if not isinstance(module, nn.Linear):
        raise OptionError(f"layer {layer!r} is a {type(module).__name__}; stages need nn.Linear.")
    parent = _block_of(model, module)
    seen: dict[str, torch.Tensor] = {}
    handles = [module.register_forward_pre_hook(lambda _m, a: seen.__setitem__("h", a[0]))]
    if parent is not None:
        handles.append(parent.register_forward_hook(lambda _m, _a, o: seen.__setitem__("z", o)))
    was_training = _evaluating(model)
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    h = seen["h"].double().reshape(len(inputs), -1)
    weight = module.weight.detach().double()
    _, s, vt = torch.linalg.svd(weight, full_matrices=False)
    after = h @ weight.T + (0 if module.bias is None else module.bias.detach().double())
    activation = None
    if "z" in seen:
        activation = _trace_ratio(seen["z"].reshape(len(inputs), -1), labels, convention)
    return Stages(
        layer,
        _trace_ratio(h, labels, convention),
        _trace_ratio(h @ vt.T * s, labels, convention),
        _trace_ratio(after, labels, convention),
        activation,
    )


def _block_of(model: nn.Module, module: nn.Module) -> nn.Module | None:
    """The Sequential that holds ``module`` followed by something (its nonlinearity)."""
    for candidate in model.modules():
        if isinstance(candidate, nn.Sequential):
            children = list(candidate.children())
            if any(child is module for child in children[:-1]):
                return candidate
    return None


@dataclass(frozen=True)
class GeometricComplexity:
    """GC = mean over samples of ‖∂e(x)/∂x‖_F²; per-sample values (for per-class means), the
    estimator used and, for Hutchinson, the standard error of the mean."""

    value: float
    per_sample: np.ndarray
    estimator: str
    samples: int
    stderr: float


def _embedding_fn(model: nn.Module | Callable, layer: str | None) -> Callable:
    """x → the embedding: the output of ``layer`` (``"<name>:input"``: its input), by default
    the input of the model's last linear layer; a plain function is used as it is."""
    if not isinstance(model, nn.Module):
        return model
    from ncviz.load.architectures import classifier_module

    if layer is None:
        layer = classifier_module(model)[0] + INPUT_SUFFIX
    resolve_module(model, layer)  # an unknown layer fails here, not at the first call

    def embed(x: torch.Tensor) -> torch.Tensor:
        held: dict[str, torch.Tensor] = {}
        handle = hook_layer(model, layer, lambda tensor: held.__setitem__("e", tensor))
        try:
            model(x)
        finally:
            handle.remove()
        return held["e"]

    return embed


def geometric_complexity(
    model_or_fn: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    *,
    layer: str | None = None,
    estimator: str = "exact",
    samples: int = 8,
    batch_size: int = 256,
    seed: int = 0,
) -> GeometricComplexity:
    """Mean squared Frobenius norm of the input–embedding Jacobian (Munn et al. 2024).

    ``estimator="exact"`` forms every row of J (one vector–Jacobian product per embedding
    dimension); ``"hutchinson"`` averages ‖Jᵀv‖² over ``samples`` Gaussian v per input
    (E‖Jᵀv‖² = ‖J‖_F², unbiased) and reports the standard error of that mean from the spread of
    each input's draws (the Monte Carlo error; the inputs themselves are fixed).

    >>> lin = nn.Linear(3, 2).double()
    >>> gc = geometric_complexity(lambda x: lin(x), torch.randn(4, 3, dtype=torch.float64))
    >>> round(gc.value, 8) == round(float((lin.weight.detach() ** 2).sum()), 8)  # J = W
    True
    """
    if estimator not in ("exact", "hutchinson"):
        raise OptionError(f"estimator must be 'exact' or 'hutchinson', got {estimator!r}.")
    embed = _embedding_fn(model_or_fn, layer)
    module = model_or_fn if isinstance(model_or_fn, nn.Module) else None
    was_training = _evaluating(module) if module is not None else False
    generator = torch.Generator().manual_seed(seed)
    per_sample, draws = [], []
    try:
        for rows in _rows(inputs, batch_size):
            x = inputs[rows].detach().clone().requires_grad_(True)
            with torch.enable_grad():
                e = embed(x)
                dim = e.reshape(len(e), -1).shape[1]
                if estimator == "exact":
                    vectors = torch.eye(dim, dtype=e.dtype, device=e.device)
                else:
                    # independent v for every input, so that the inputs' errors are independent
                    shape = (samples, len(x), dim)
                    vectors = torch.randn(shape, generator=generator, dtype=torch.float64)
                    vectors = vectors.to(device=e.device, dtype=e.dtype)
                grads = _vjps(e, x, vectors).reshape(len(vectors), len(x), -1).double()
            squares = (grads**2).sum(dim=2)  # k × B: ‖Jᵀv_k‖² per sample
            if estimator == "exact":
                per_sample.append(squares.sum(dim=0))
            else:
                per_sample.append(squares.mean(dim=0))
                draws.append(squares.var(dim=0, unbiased=True) if len(vectors) > 1 else None)
    finally:
        if module is not None:
            module.train(was_training)
    values = torch.cat(per_sample).cpu().numpy()
    stderr = math.nan if estimator == "hutchinson" and samples < 2 else 0.0
    if draws and draws[0] is not None:  # Monte Carlo error only: the inputs are fixed
        variances = torch.cat(draws)
        stderr = float(torch.sqrt(variances.sum() / samples) / len(variances))
    used = 0 if estimator == "exact" else samples
    return GeometricComplexity(float(values.mean()), values, estimator, used, stderr)


def geometric_collapse(
    per_sample_gc: Sequence[float] | np.ndarray,
    features: torch.Tensor | np.ndarray,
    labels: Sequence[int] | np.ndarray,
) -> float:
    """The CDNV with each class's mean geometric complexity in place of its variance: mean over
    pairs c < c′ of (GC_c + GC_c′) / (2‖μ_c − μ_c′‖²), μ the class means of the embedding.

    >>> features = np.array([[0.0, 0], [0, 0], [2, 0], [2, 0]])
    >>> geometric_collapse([1.0, 3.0, 2.0, 2.0], features, [0, 0, 1, 1])  # (2 + 2) / (2·4)
    0.5
    """
    labels = np.asarray(labels)
    classes, codes = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise InputError("geometric collapse needs at least two classes.")
    h = torch.as_tensor(np.asarray(features), dtype=torch.float64).reshape(len(labels), -1)
    gc = torch.as_tensor(np.asarray(per_sample_gc), dtype=torch.float64)
    index = torch.from_numpy(codes)
    counts = torch.bincount(index, minlength=len(classes)).double()
    means = torch.zeros(len(classes), h.shape[1], dtype=torch.float64).index_add_(0, index, h)
    means /= counts[:, None]
    class_gc = torch.zeros(len(classes), dtype=torch.float64).index_add_(0, index, gc) / counts
    centred = means - means.mean(dim=0)
    scalars, _, _ = geometry_metrics(
        centred, None, class_gc, 1.0, max_matrix_classes=0, means=means
    )
    return float(scalars["cdnv"])


STAGE_KEYS = {
    "input": "stage_nc1_input",
    "S Vᵀ": "stage_nc1_svt",
    "U S Vᵀ": "stage_nc1_usvt",
    "nonlinearity": "stage_nc1_activation",
}
FEATURE_LEARNING = ("agop", "gc")


def feature_learning_rows(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    classifier: str,
    which: Sequence[str],
    *,
    max_samples: int = 1000,
    seed: int = 0,
    convention: str = DEFAULT_CONVENTION,
) -> dict[str, dict[str, float]]:
    """The rows ``ncviz analyze --agop --gc`` adds, per layer (``"<linear>:input"``).

    ``agop``: for every nn.Linear, ``agop_nfa_corr`` (power 1), ``agop_nfa_corr_sqrt`` (power ½)
    and the stage NC1 values (``stage_nc1_input``, ``_svt``, ``_usvt``, ``_activation``: Tr Σ_W /
    Tr Σ_B, or under ``convention="rfm2024"`` the Deep RFM code's NC1 of each stage).
    ``gc``: at the classifier input, ``geometric_complexity`` (exact) and
    ``geometric_collapse``. Both on at most ``max_samples`` inputs (a seeded random subset).
    """
    unknown = set(which) - set(FEATURE_LEARNING)
    if unknown:
        raise OptionError(f"unknown feature-learning measure(s) {sorted(unknown)}.")
    if len(inputs) > max_samples:
        keep = np.sort(np.random.default_rng(seed).choice(len(inputs), max_samples, replace=False))
        inputs, labels = inputs[keep], labels[keep]
    rows: dict[str, dict[str, float]] = {}
    if "agop" in which:
        for name, module in model.named_modules():
            if not isinstance(module, nn.Linear):
                continue
            matrix = agop(model, inputs, name)
            values = {
                "agop_nfa_corr": nfa_correlation(matrix, module.weight, power=1.0),
                "agop_nfa_corr_sqrt": nfa_correlation(matrix, module.weight, power=0.5),
            }
            stages = stage_decomposition(model, inputs, labels, name, convention).as_dict()
            values.update({STAGE_KEYS[stage]: value for stage, value in stages.items()})
            rows[name + INPUT_SUFFIX] = values
    if "gc" in which:
        layer = classifier + INPUT_SUFFIX
        gc = geometric_complexity(model, inputs, layer=layer)
        with torch.no_grad():
            embedding = _embedding_fn(model, layer)(inputs).cpu()
        collapse = geometric_collapse(gc.per_sample, embedding, labels.cpu().numpy())
        rows.setdefault(layer, {}).update(
            {"geometric_complexity": gc.value, "geometric_collapse": collapse}
        )
    return rows
