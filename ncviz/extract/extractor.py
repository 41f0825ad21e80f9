"""Batched feature extraction with forward hooks, reduced into collapse statistics as it streams.

Two passes over the data (:class:`~ncviz.metrics.CollapseStatistics`): pass 1 accumulates class
means, pass 2 the scatter around them. Pass 1 also writes each layer's activations to the cache;
pass 2 then reads them back instead of running the model again. Batches run on the best device
(CUDA when available), under ``torch.inference_mode`` and optionally autocast; statistics stay on
that device.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ncviz.cache import ActivationCache, cache_key
from ncviz.distributed import all_reduce_statistics, shard_indices, world
from ncviz.errors import OptionError
from ncviz.extract.layers import INPUT_SUFFIX, first_tensor, hook_layer
from ncviz.load.datasets import Dataset
from ncviz.metrics import CollapseStatistics
from ncviz.metrics.classification import class_rows_for
from ncviz.metrics.threads import threads_for

ProgressFn = Callable[[int, int, str], None]
POOL_CHOICES = ("auto", "flatten", "avg")


def best_device(requested: str | torch.device | None = None) -> torch.device:
    """``requested`` if given (``"cuda"`` must be available), else CUDA when present, else CPU."""
    if requested in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise OptionError("device 'cuda' was requested but no CUDA GPU is available; use 'cpu'.")
    return device


@dataclass(frozen=True)
class ExtractOptions:
    """``pool``: "flatten" conv maps, "avg" = global average over spatial dims, "auto" = flatten
    unless the flattened size exceeds ``max_flat_dim`` (then average-pool)."""

    batch_size: int = 256
    pool: str = "auto"
    autocast: bool = False
    max_flat_dim: int = 4096
    min_count: int | None = None  # classes with fewer samples are dropped (token classes: 2)

    def __post_init__(self) -> None:
        if self.pool not in POOL_CHOICES:
            raise OptionError(f"pool must be one of {POOL_CHOICES}, got {self.pool!r}.")
        if self.batch_size < 1:
            raise OptionError(f"batch_size must be positive, got {self.batch_size}.")


@dataclass
class LayerFeatures:
    """What extraction produced for one layer."""

    name: str
    dim: int
    pooled: bool
    statistics: CollapseStatistics | None = None
    features: np.ndarray | None = None
    cache_hit: bool = False


def _reduce(output: torch.Tensor, pooled: bool) -> torch.Tensor:
    """N×d features: spatial dims averaged (``pooled``) or flattened with the channels."""
    if output.ndim > 2 and pooled:
        output = output.mean(dim=tuple(range(2, output.ndim)))
    return output.reshape(len(output), -1)


class _Hooks:
    """Forward (pre-)hooks that keep each chosen layer's output of the current batch."""

    def __init__(self, model: nn.Module, layers: list[str]) -> None:
        self.outputs: dict[str, torch.Tensor] = {}
        self.pooled = dict.fromkeys(layers, False)
        self.raw = False  # while probing, keep outputs unreduced to see their shapes
        self._handles = [
            hook_layer(model, layer, functools.partial(self._store, layer)) for layer in layers
        ]

    def _store(self, layer: str, tensor: torch.Tensor | None) -> None:
        if tensor is None:
            raise OptionError(f"layer {layer!r} produces no tensor; pick another layer.")
        tensor = tensor.detach()
        self.outputs[layer] = tensor if self.raw else _reduce(tensor, self.pooled[layer])

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


def _numpy_dtype(dtype: torch.dtype) -> np.dtype:
    """Cache dtype: float16 stays float16; float32 and bfloat16 (exact in float32) as float32."""
    return np.dtype(np.float16) if dtype == torch.float16 else np.dtype(np.float32)


def _plan(layer: str, shape: tuple[int, ...], options: ExtractOptions) -> LayerFeatures:
    flat_dim = int(np.prod(shape)) if shape else 1
    spatial = len(shape) > 1
    pooled = spatial and (
        options.pool == "avg" or (options.pool == "auto" and flat_dim > options.max_flat_dim)
    )
    if not pooled and flat_dim > 16 * options.max_flat_dim:
        raise OptionError(
            f"layer {layer!r} flattens to {flat_dim} dimensions (a {flat_dim}×{flat_dim} "
            "scatter matrix); use pool='avg' for a layer this large."
        )
    return LayerFeatures(name=layer, dim=shape[0] if pooled else flat_dim, pooled=pooled)


def _classifier_for(
    layer: LayerFeatures, classifier: tuple[str, nn.Module] | None, classes: np.ndarray
) -> dict:
    """The statistics' classifier arguments (W, b, class rows) for ``layer`` if the classifier
    reads it, else none."""
    if classifier is None or layer.name != classifier[0] + INPUT_SUFFIX:
        return {}
    weight = classifier[1].weight.detach().to("cpu", torch.float64)
    bias = getattr(classifier[1], "bias", None)
    bias = None if bias is None else bias.detach().to("cpu", torch.float64)
    if weight.shape[1] != layer.dim:
        return {}
    rows = class_rows_for(weight.shape[0], classes)
    return {"weight": weight, "bias": bias, "class_rows": rows}


def _class_names(dataset: Dataset) -> list:
    names: list = []
    for name in dataset.classes:
        try:
            names.append(int(name))
        except ValueError:
            return list(dataset.classes)
    return names


def extract(
    model: nn.Module,
    dataset: Dataset,
    layers: list[str],
    *,
    classifier: tuple[str, nn.Module] | None = None,
    device: str | torch.device | None = None,
    options: ExtractOptions | None = None,
    cache: ActivationCache | None = None,
    checkpoint_id: str = "",
    keep_features: bool = False,
    progress: ProgressFn | None = None,
) -> dict[str, LayerFeatures]:
    """Run ``dataset`` through ``model``; per layer, the collapse statistics with both passes
    done (classification data) and/or the features themselves (regression, ``keep_features``).

    ``classifier`` = (module name, module): its weight/bias join the statistics of the layer
    ``"<name>:input"``. ``checkpoint_id`` (the checkpoint's content hash) keys the cache; without
    it nothing is cached. ``progress(done, total, stage)`` is called after every batch; raise from
    it to cancel (no partial cache entry is left).
    """
    options = options or ExtractOptions()
    device = best_device(device)
    rank, world_size = world()
    if world_size > 1:  # under torchrun: this rank's disjoint shard; sums are all-reduced below
        dataset = dataset.subset(shard_indices(len(dataset), rank, world_size))
    model = model.to(device).eval()
    hooks = _Hooks(model, layers)
    use_autocast = options.autocast and device.type == "cuda"

    def forward(inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        hooks.outputs.clear()
        with torch.inference_mode(), torch.autocast(device.type, enabled=use_autocast):
            model(inputs.to(device, non_blocking=True))
        return dict(hooks.outputs)

    try:
        hooks.raw = True
        probe_inputs = dataset.inputs[:2]
        probe, probe_flops = _counted(model, forward, probe_inputs)
        hooks.raw = False
        plans = {layer: _plan(layer, tuple(probe[layer].shape[1:]), options) for layer in layers}
        dtypes = {layer: probe[layer].dtype for layer in layers}
        for layer, plan in plans.items():
            hooks.pooled[layer] = plan.pooled
        # a small model's forward pass runs on one thread: faster, and immune to a busy machine
        batch_flops = probe_flops / max(1, len(probe_inputs)) * options.batch_size
        with threads_for(batch_flops, device):
            return _run(plans, dtypes, dataset, forward, classifier, device, options, cache,
                        checkpoint_id, keep_features, progress)  # fmt: skip
    finally:
        hooks.close()


def _counted(
    model: nn.Module,
    forward: Callable[[torch.Tensor], dict[str, torch.Tensor]],
    inputs: torch.Tensor,
) -> tuple[dict[str, torch.Tensor], float]:
    """``forward(inputs)`` and the floating-point operations of its weighted layers: a module
    whose weight W has ≥ 2 dimensions (linear, convolution) does 2 · |output| · |W[0]| of them.
    Matmuls without weights (attention) are not counted — a lower bound, enough to tell a small
    model from a large one."""
    macs = 0

    def count(module: nn.Module, _inputs: object, output: object) -> None:
        nonlocal macs
        tensor = first_tensor(output)
        if tensor is not None:
            macs += tensor.numel() * module.weight[0].numel()

    handles = [
        module.register_forward_hook(count)
        for module in model.modules()
        if isinstance(getattr(module, "weight", None), torch.Tensor) and module.weight.ndim >= 2
    ]
    try:
        outputs = forward(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return outputs, 2.0 * macs


def _run(
    plans: dict[str, LayerFeatures],
    dtypes: dict[str, torch.dtype],
    dataset: Dataset,
    forward: Callable[[torch.Tensor], dict[str, torch.Tensor]],
    classifier: tuple[str, nn.Module] | None,
    device: torch.device,
    options: ExtractOptions,
    cache: ActivationCache | None,
    checkpoint_id: str,
    keep_features: bool,
    progress: ProgressFn | None,
) -> dict[str, LayerFeatures]:
    n, size = len(dataset), options.batch_size
    starts = list(range(0, n, size))
    classification = dataset.labels is not None
    labels = dataset.labels.to(device, torch.int64) if classification else None
    keys: dict[str, str] = {}
    if cache is not None and checkpoint_id:
        fingerprint = dataset.fingerprint()
        autocast = options.autocast and device.type == "cuda"
        keys = {
            layer: cache_key(
                checkpoint=checkpoint_id, data=fingerprint, layer=layer, pooled=plan.pooled,
                autocast=autocast,
            )
            for layer, plan in plans.items()
        }  # fmt: skip
    cached = {layer: cache.get(key) for layer, key in keys.items()} if cache else {}
    cached = {layer: array for layer, array in cached.items() if array is not None}
    for layer in cached:
        plans[layer].cache_hit = True
    if classification:
        for plan in plans.values():
            plan.statistics = CollapseStatistics(
                dataset.num_classes, plan.dim, device=device, min_count=options.min_count,
                **_classifier_for(plan, classifier, np.array(_class_names(dataset))),
            )  # fmt: skip
    kept: dict[str, list[np.ndarray]] = {layer: [] for layer in plans}
    passes = 2 if classification else 1
    forwards_needed = len(cached) < len(plans)
    total = len(starts) * passes
    done = 0

    def from_cache(layer: str, start: int) -> torch.Tensor:
        return torch.from_numpy(np.array(cached[layer][start : start + size])).to(device)

    for pass_index in range(passes):
        with contextlib.ExitStack() as stack:
            writers = {}
            if pass_index == 0 and cache is not None:
                writers = {
                    layer: stack.enter_context(
                        cache.writer(key, (n, plans[layer].dim), _numpy_dtype(dtypes[layer]))
                    )
                    for layer, key in keys.items()
                    if layer not in cached
                }
            for start in starts:
                outputs = forward(dataset.inputs[start : start + size]) if forwards_needed else {}
                y = None if labels is None else labels[start : start + size]
                for layer, plan in plans.items():
                    feats = from_cache(layer, start) if layer in cached else outputs[layer]
                    if layer in writers:
                        writers[layer].write(feats.cpu().numpy())
                    if plan.statistics is not None:  # dataset labels are valid class indices
                        plan.statistics.update(feats, y, labels_checked=True, check_finite=False)
                    if pass_index == 0 and (keep_features or not classification):
                        kept[layer].append(feats.float().cpu().numpy())
                done += 1
                if progress is not None:
                    progress(done, total, f"pass {pass_index + 1}/{passes}")
        if pass_index == 0:
            for layer, key in keys.items():
                if layer not in cached and (array := cache.get(key)) is not None:
                    cached[layer] = array
            forwards_needed = len(cached) < len(plans)
            if classification:
                for layer, plan in plans.items():
                    all_reduce_statistics(plan.statistics)
                    plan.statistics.require_finite_sums(f"layer {layer!r}")
                    plan.statistics.start_second_pass(np.array(dataset.classes))
    if classification:
        for layer, plan in plans.items():
            all_reduce_statistics(plan.statistics)
            plan.statistics.require_finite_sums(f"layer {layer!r}")
    for layer, chunks in kept.items():
        if chunks:
            plans[layer].features = np.concatenate(chunks)
    return plans
