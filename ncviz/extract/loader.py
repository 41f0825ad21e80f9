"""Two-pass extraction over a user's own data loader, in the user's own process.

An adapter of the one pass driver (:func:`ncviz.extract.passes.run_passes`): the data come as
batches from any iterable (a ``DataLoader``, a list, an object with ``__iter__``) and the model is
called the way the user calls it. Pass 1 sums the class means (or the feature/target
means for regression) and draws a uniform random sample of feature rows; pass 2 sums the scatter
around the means. What is kept: per layer, O(C·d + d²) sums and ``sample_size`` rows (and, while
pass 2 runs, pass 1's layer outputs within the replay budget below).

The model runs over the loader once when pass 1's layer outputs fit in memory (a quarter of the
free memory where they live, at most 4 GiB: :func:`~ncviz.extract.passes.replay_budget`): pass 2
replays them, so its features are pass 1's by construction, whatever the loader does. Past that
budget the loader is iterated again and must yield the same samples (any order: the sums do not
depend on it): a loader whose pass-2 class counts differ from pass 1 is refused; one whose
features differ (random augmentation) is reported in :attr:`Capture.warnings`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

from ncviz.errors import OptionError
from ncviz.extract.layers import INPUT_SUFFIX, block_names
from ncviz.extract.passes import (
    GROUP_KEYS,
    LABEL_KEYS,
    TASKS,
    BatchFn,
    Capture,
    CapturedLayer,
    PassSettings,
    run_passes,
    split_batch,
    split_grouped_batch,
)
from ncviz.extract.plans import ExtractOptions, Hooks, LayerFeatures, ProgressFn

ForwardFn = Callable[[nn.Module, Any], Any]

__all__ = [
    "GROUP_KEYS",
    "LABEL_KEYS",
    "TASKS",
    "BatchFn",
    "Capture",
    "CapturedLayer",
    "ForwardFn",
    "auto_layers",
    "call_model",
    "capture",
    "capture_outputs",
    "model_device",
    "split_batch",
    "split_grouped_batch",
    "to_device",
    "unwrap",
]


def to_device(value: Any, device: torch.device) -> Any:
    """``value`` with every tensor in it (nested dicts/lists/tuples) moved to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, Mapping):
        return {k: to_device(v, device) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(to_device(v, device) for v in value)
    return value


def call_model(model: nn.Module, inputs: Any, forward_fn: ForwardFn | None = None) -> Any:
    """``forward_fn(model, inputs)``; else ``model(**inputs)`` for a dict, ``model(inputs)``."""
    if forward_fn is not None:
        return forward_fn(model, inputs)
    if isinstance(inputs, Mapping):
        return model(**inputs)
    return model(inputs)


def unwrap(model: nn.Module) -> nn.Module:
    """The module whose ``named_modules`` the user named: DDP/DataParallel (``module``) and
    ``torch.compile`` (``_orig_mod``) wrappers removed."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def model_device(model: nn.Module) -> torch.device:
    """Where the model's parameters (else buffers) live; CPU for a model without either."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def auto_layers(model: nn.Module, classifier: str | None) -> list[str]:
    """The default layers: every top-level block, then the classifier input."""
    blocks = block_names(model, classifier or "")
    return [*blocks, classifier + INPUT_SUFFIX] if classifier else blocks


def capture(
    model: nn.Module,
    loader: Iterable[Any],
    layers: list[str] | str = "auto",
    *,
    classifier: tuple[str, nn.Module] | None = None,
    task: str = "auto",
    num_classes: int | None = None,
    min_count: int | None = None,
    sample_size: int = 5000,
    seed: int = 0,
    batch_fn: BatchFn | None = None,
    forward_fn: ForwardFn | None = None,
    options: ExtractOptions | None = None,
    progress: ProgressFn | None = None,
    groups: bool = False,
) -> Capture:
    """Run ``loader`` through ``model`` (once when the layer outputs fit in memory, else twice)
    and reduce the chosen layers into exact statistics.

    Args:
        model: any ``nn.Module`` (DDP/compile wrappers are looked through); it runs where its
            parameters are, in eval mode under ``torch.inference_mode``; its mode is restored.
        loader: batches as :func:`split_batch` reads them; iterated once per pass.
        layers: module names (``"<name>:input"`` for a module's input), or ``"auto"``: every
            top-level block and the classifier input (a block whose output *is* that input is
            listed once, as the classifier input).
        classifier: (name, module) of the linear head; its W, b join the statistics of
            ``"<name>:input"``. None: no classifier metrics.
        task: "classification" (integer labels), "regression" (real targets) or "auto" (from the
            first batch's label dtype).
        num_classes: C; default: the classifier's number of outputs.
        sample_size: feature rows kept per layer (uniform over the data, for embeddings).
        options: ``pool``/``autocast``/``max_flat_dim`` as for :func:`~ncviz.extract.extract`.
        progress: ``progress(done, total, stage)`` after every batch (total 0 when the loader
            has no length); raise from it to cancel.
        groups: batches carry a group per sample (``(x, y, g)``, see
            :func:`split_grouped_batch`); every group then gets its own statistics
            (:attr:`Capture.groups`; classification only, one process).
    """
    options = options or ExtractOptions()
    net = unwrap(model)
    device = model_device(net)
    settings = PassSettings(
        task=task,
        num_classes=num_classes,
        min_count=min_count,
        sample_size=sample_size,
        seed=seed,
        classifier=classifier,
        options=options,
        device=device,
        grouped=groups,
    )
    clf_layer = None if classifier is None else classifier[0] + INPUT_SUFFIX
    auto = layers == "auto"
    names = auto_layers(net, classifier and classifier[0]) if auto else list(layers)
    if not names:
        raise OptionError("no layers to record; name at least one module of the model.")
    if clf_layer and clf_layer not in names:
        names.append(clf_layer)
    if len(set(names)) != len(names):
        raise OptionError(f"layers are listed twice: {names}.")
    hooks = Hooks(net, names)
    use_autocast = options.autocast and device.type == "cuda"
    was_training = net.training
    hooks.raw = True  # the first batch's outputs, unreduced, fix the plans

    def forward(inputs: Any) -> dict[str, torch.Tensor]:
        """The hooked layers' outputs: unreduced for the first batch, flattened or pooled
        inside the hooks after that."""
        hooks.outputs.clear()
        with torch.autocast(device.type, enabled=use_autocast):
            call_model(net, to_device(inputs, device), forward_fn)
        return dict(hooks.outputs)

    def planned(plans: dict[str, LayerFeatures]) -> None:
        hooks.raw = False
        for name, plan in plans.items():
            hooks.pooled[name] = plan.pooled

    net.eval()
    try:
        with torch.inference_mode():
            return run_passes(
                forward,
                lambda _pass: loader,
                names,
                settings,
                batch_fn=batch_fn,
                progress=progress,
                dedupe=clf_layer if auto else None,
                on_plan=planned,
            )
    finally:
        hooks.close()
        net.train(was_training)


def capture_outputs(
    forward: Callable[[Any], dict[str, torch.Tensor]],
    loader: Iterable[Any],
    layers: list[str],
    *,
    classifier: tuple[str, Any] | None = None,
    task: str = "auto",
    num_classes: int | None = None,
    min_count: int | None = None,
    sample_size: int = 5000,
    seed: int = 0,
    batch_fn: BatchFn | None = None,
    options: ExtractOptions | None = None,
    device: torch.device | str = "cpu",
    progress: ProgressFn | None = None,
) -> Capture:
    """:func:`capture` for any ``forward(inputs) -> {layer: output}`` (e.g. an ONNX Runtime
    session): the same plans, statistics, sample and checks. ``classifier`` = (name, object with
    ``weight`` and ``bias`` tensors)."""
    settings = PassSettings(
        task=task,
        num_classes=num_classes,
        min_count=min_count,
        sample_size=sample_size,
        seed=seed,
        classifier=classifier,
        options=options or ExtractOptions(),
        device=torch.device(device),
    )
    return run_passes(
        forward, lambda _pass: loader, list(layers), settings, batch_fn=batch_fn, progress=progress
    )
