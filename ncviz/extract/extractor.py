"""Extraction of a :class:`~ncviz.load.datasets.Dataset` with forward hooks: an adapter of the one
pass driver (:func:`ncviz.extract.passes.run_passes`).

Two passes over the data (:class:`~ncviz.metrics.CollapseStatistics`): pass 1 accumulates class
means, pass 2 the scatter around them. The activation cache is part of the forward: pass 1 writes
each layer's activations to it, and pass 2 reads them back instead of running the model again.
Batches run on the best device (CUDA when available), under ``torch.inference_mode`` and
optionally autocast; statistics stay on that device.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from ncviz.cache import ActivationCache, cache_key
from ncviz.cache.activations import RowWriter
from ncviz.distributed import shard_indices, world
from ncviz.errors import OptionError
from ncviz.extract.budget import check_fits, passes_need
from ncviz.extract.layers import first_tensor
from ncviz.extract.passes import PassSettings, run_passes
from ncviz.extract.plans import ExtractOptions, Hooks, LayerFeatures, ProgressFn, layer_plan
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

    Labelled data with groups (environments, domains) also give every group its own exact
    statistics (:attr:`LayerFeatures.groups`) beside the pooled ones, unless ``by_group`` is
    False.
    """
    options = options or ExtractOptions()
    device = best_device(device)
    grouped = by_group and dataset.groups is not None and dataset.labels is not None
    if grouped and keep_features:
        raise OptionError("per-group statistics keep no features; pass by_group=False.")
    rank, world_size = world()
    if world_size > 1:  # under torchrun: this rank's disjoint shard; sums are all-reduced
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
        for layer, plan in plans.items():
            hooks.pooled[layer] = plan.pooled
        per_sample = sum(probe[layer].nbytes for layer in layers) / max(1, len(probe_inputs))
        if device.type == "cpu":  # host memory; on a GPU the device's allocator says it itself
            check_fits(  # before a full batch runs: its outputs, then what the passes hold
                passes_need(
                    {layer: plan.dim for layer, plan in plans.items()},
                    dataset.num_classes if dataset.labels is not None else 0,
                    num_rows=len(dataset),
                    keep_features=keep_features or dataset.labels is None,
                    batch_bytes=int(per_sample * min(options.batch_size, len(dataset))),
                    batch_size=options.batch_size,
                )
            )
        stream = _DatasetBatches(dataset, forward, options.batch_size, device, grouped)
        if cache is not None and checkpoint_id:
            dtypes = {layer: _numpy_dtype(probe[layer].dtype) for layer in layers}
            stream.use_cache(cache, checkpoint_id, plans, dtypes, use_autocast)
        classification = dataset.labels is not None
        settings = PassSettings(
            task="classification" if classification else "regression",
            num_classes=dataset.num_classes if classification else None,
            class_names=np.array(dataset.classes) if classification else None,
            min_count=options.min_count,
            classifier=classifier,
            options=options,
            device=device,
            keep_features=keep_features or not classification,
            statistics=classification,
            check_repeat=False,
            grouped=grouped,
        )
        # a small model's forward pass runs on one thread: faster, and immune to a busy machine
        batch_flops = probe_flops / max(1, len(probe_inputs)) * options.batch_size
        with threads_for(batch_flops, device):
            captured = run_passes(
                stream.forward,
                stream.batches,
                list(layers),
                settings,
                plans=plans,
                total=stream.num_batches,
                progress=progress,
            )
    finally:
        hooks.close()
    found = {}
    for layer, item in captured.layers.items():
        statistics = item.statistics
        assert statistics is None or isinstance(statistics, CollapseStatistics)
        found[layer] = LayerFeatures(
            layer,
            item.dim,
            item.pooled,
            statistics,
            item.features,
            cache_hit=layer in stream.hits,
            groups={g: per_layer[layer] for g, per_layer in captured.groups.items()},
        )
    return found


class _DatasetBatches:
    """A dataset's batches in order, the activation cache folded into the forward: in pass 1 the
    model runs for the layers not in the cache and their rows are written to it; from then on
    (and for the layers already cached) each batch's rows are read back by their offset, and
    the model does not run again. Batches are ((offset, inputs), labels[, groups])."""

    def __init__(
        self,
        dataset: Dataset,
        model_forward: Callable[[torch.Tensor], dict[str, torch.Tensor]],
        batch_size: int,
        device: torch.device,
        grouped: bool,
    ) -> None:
        self.dataset, self.model_forward, self.device = dataset, model_forward, device
        self.size, self.grouped = batch_size, grouped
        self.starts = range(0, len(dataset), batch_size)
        self.cache: ActivationCache | None = None
        self.keys: dict[str, str] = {}
        self.shapes: dict[str, tuple[int, int]] = {}
        self.dtypes: dict[str, np.dtype] = {}
        self.cached: dict[str, np.ndarray] = {}
        self.writers: dict[str, RowWriter] = {}
        self.hits: set[str] = set()

    @property
    def num_batches(self) -> int:
        return len(self.starts)

    def use_cache(
        self,
        cache: ActivationCache,
        checkpoint_id: str,
        plans: dict[str, LayerFeatures],
        dtypes: dict[str, np.dtype],
        autocast: bool,
    ) -> None:
        """Read (and write) the layers' rows through ``cache``, keyed by checkpoint and data."""
        fingerprint = self.dataset.fingerprint()
        self.cache, self.dtypes = cache, dtypes
        for layer, plan in plans.items():
            self.keys[layer] = cache_key(
                checkpoint=checkpoint_id,
                data=fingerprint,
                layer=layer,
                pooled=plan.pooled,
                autocast=autocast,
            )
            self.shapes[layer] = (len(self.dataset), plan.dim)
            if (array := cache.get(self.keys[layer])) is not None:
                self.cached[layer] = array
        self.hits = set(self.cached)

    def batches(self, pass_index: int) -> Iterator[tuple[Any, ...]]:
        """The batches of one pass; pass 1 writes the missing layers' cache entries, published
        when it ends (an interrupted pass leaves none)."""
        data, size = self.dataset, self.size
        labels = data.labels if data.labels is not None else data.targets
        with contextlib.ExitStack() as stack:
            if pass_index == 0 and self.cache is not None:
                self.writers = {
                    layer: stack.enter_context(
                        self.cache.writer(key, self.shapes[layer], self.dtypes[layer])
                    )
                    for layer, key in self.keys.items()
                    if layer not in self.cached
                }
            try:
                for start in self.starts:
                    stop = start + size
                    batch: tuple[Any, ...] = (
                        (start, data.inputs[start:stop]),
                        None if labels is None else labels[start:stop],
                    )
                    if self.grouped:
                        assert data.groups is not None
                        batch += (data.groups[start:stop],)
                    yield batch
            finally:
                written, self.writers = self.writers, {}
        if self.cache is not None:  # the entries just published are read from now on
            for layer in written:
                if (array := self.cache.get(self.keys[layer])) is not None:
                    self.cached[layer] = array

    def forward(self, inputs: tuple[int, torch.Tensor]) -> dict[str, torch.Tensor]:
        start, x = inputs
        needed = len(self.cached) < len(self.keys) or not self.keys
        outputs = self.model_forward(x) if needed else {}
        for layer, writer in self.writers.items():
            writer.write(outputs[layer].cpu().numpy())
        for layer, array in self.cached.items():
            rows = np.array(array[start : start + len(x)])
            outputs[layer] = torch.from_numpy(rows).to(self.device)
        return outputs


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
        weight = getattr(module, "weight", None)
        if tensor is not None and isinstance(weight, torch.Tensor):
            macs += tensor.numel() * weight[0].numel()

    handles = [
        module.register_forward_hook(count)
        for module in model.modules()
        if isinstance(weight := getattr(module, "weight", None), torch.Tensor) and weight.ndim >= 2
    ]
    try:
        outputs = forward(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return outputs, 2.0 * macs
