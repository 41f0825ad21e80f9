"""Batched feature extraction with forward hooks, reduced into collapse statistics as it streams.

Two passes over the data (:class:`~ncviz.metrics.CollapseStatistics`): pass 1 accumulates class
means, pass 2 the scatter around them. Pass 1 also writes each layer's activations to the cache;
pass 2 then reads them back instead of running the model again. Batches run on the best device
(CUDA when available), under ``torch.inference_mode`` and optionally autocast; statistics stay on
that device.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ncviz.cache import ActivationCache, cache_key
from ncviz.distributed import all_reduce_statistics, shard_indices, world
from ncviz.errors import OptionError
from ncviz.extract.layers import first_tensor
from ncviz.extract.loader import capture
from ncviz.extract.plans import (
    ExtractOptions,
    Hooks,
    LayerFeatures,
    ProgressFn,
    classifier_arguments,
    layer_plan,
)
from ncviz.load.datasets import Dataset
from ncviz.metrics import CollapseStatistics
from ncviz.metrics.threads import threads_for


def best_device(requested: str | torch.device | None = None) -> torch.device:
    """``requested`` if given (``"cuda"`` must be available), else CUDA when present, else CPU."""
    if requested in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise OptionError("device 'cuda' was requested but no CUDA GPU is available; use 'cpu'.")
    return device


def _numpy_dtype(dtype: torch.dtype) -> np.dtype:
    """Cache dtype: float16 stays float16; float32 and bfloat16 (exact in float32) as float32."""
    return np.dtype(np.float16) if dtype == torch.float16 else np.dtype(np.float32)


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
    by_group: bool = True,
) -> dict[str, LayerFeatures]:
    """Run ``dataset`` through ``model``; per layer, the collapse statistics with both passes
    done (classification data) and/or the features themselves (regression, ``keep_features``).

    ``classifier`` = (module name, module): its weight/bias join the statistics of the layer
    ``"<name>:input"``. ``checkpoint_id`` (the checkpoint's content hash) keys the cache; without
    it nothing is cached. ``progress(done, total, stage)`` is called after every batch; raise from
    it to cancel (no partial cache entry is left).

    Labelled data with groups (environments, domains) stream as batches (x, y, group) through
    :func:`ncviz.extract.loader.capture` unless ``by_group`` is False: every group gets its own
    exact statistics (:attr:`LayerFeatures.groups`) beside the pooled ones, without holding any
    layer's N×d features (and without the activation cache).
    """
    options = options or ExtractOptions()
    device = best_device(device)
    if by_group and dataset.groups is not None and dataset.labels is not None:
        if keep_features:
            raise OptionError("per-group statistics keep no features; pass by_group=False.")
        return _grouped(model, dataset, layers, classifier, device, options, progress)
    rank, world_size = world()
    if world_size > 1:  # under torchrun: this rank's disjoint shard; sums are all-reduced below
        dataset = dataset.subset(shard_indices(len(dataset), rank, world_size))
    model = model.to(device).eval()
    hooks = Hooks(model, layers)
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
        plans = {
            layer: layer_plan(layer, tuple(probe[layer].shape[1:]), options) for layer in layers
        }
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
                **classifier_arguments(plan, classifier, np.array(_class_names(dataset))),
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


def _grouped(
    model: nn.Module,
    dataset: Dataset,
    layers: list[str],
    classifier: tuple[str, nn.Module] | None,
    device: torch.device,
    options: ExtractOptions,
    progress: ProgressFn | None,
) -> dict[str, LayerFeatures]:
    """:func:`extract` of labelled data with groups, through the capture loop (groups)."""
    size, labels, groups = options.batch_size, dataset.answers, dataset.groups
    assert groups is not None  # the caller checked
    batches = [(dataset.inputs[k : k + size], labels[k : k + size], groups[k : k + size])
               for k in range(0, len(dataset), size)]  # fmt: skip
    captured = capture(
        model.to(device), batches, list(layers), classifier=classifier, task="classification",
        num_classes=dataset.num_classes, min_count=options.min_count, sample_size=0,
        options=options, progress=progress, groups=True,
    )  # fmt: skip
    found = {}
    for name, item in captured.layers.items():
        assert isinstance(item.statistics, CollapseStatistics)  # task "classification"
        found[name] = LayerFeatures(
            name, item.dim, item.pooled, item.statistics,
            groups={g: per_layer[name] for g, per_layer in captured.groups.items()},
        )  # fmt: skip
    return found
