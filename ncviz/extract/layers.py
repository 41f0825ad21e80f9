"""Which layers of a model can be hooked, their output shapes, and the default choice.

Layer names are module names from ``named_modules``; ``"<module>:input"`` names the input of a
module (``"fc:input"`` is the classifier input, the features of Papyan et al.'s NC metrics).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ncviz.errors import OptionError, did_you_mean

INPUT_SUFFIX = ":input"


@dataclass(frozen=True)
class LayerInfo:
    name: str
    kind: str
    output_shape: tuple[int, ...]  # per sample, without the batch dimension

    @property
    def flat_dim(self) -> int:
        size = 1
        for s in self.output_shape:
            size *= s
        return size


def _container(module: nn.Module) -> bool:
    return isinstance(module, (nn.Sequential, nn.ModuleList)) and any(
        len(list(child.children())) for child in module.children()
    )


def block_names(model: nn.Module, classifier: str) -> list[str]:
    """Top-level blocks: the model's children with parameters, containers of blocks expanded."""
    names = []
    for name, child in model.named_children():
        if name == classifier:
            continue
        if _container(child):
            names += [f"{name}.{sub}" for sub, _ in child.named_children()]
        elif any(True for _ in child.parameters()):
            names.append(name)
    return names


def resolve_module(model: nn.Module, layer: str) -> tuple[nn.Module, bool]:
    """The module a layer name refers to, and whether its input (not output) is meant."""
    name, wants_input = (
        (layer[: -len(INPUT_SUFFIX)], True) if layer.endswith(INPUT_SUFFIX) else (layer, False)
    )
    modules = dict(model.named_modules())
    if name not in modules:
        known = [n for n in modules if n]
        known += [n + INPUT_SUFFIX for n in known]
        raise OptionError(
            f"model has no layer {layer!r}; {did_you_mean(layer, known)} — `ncviz layers` lists "
            "them with their shapes."
        )
    return modules[name], wants_input


def first_tensor(value: object) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)) and value:
        return first_tensor(value[0])
    if hasattr(value, "last_hidden_state"):
        return value.last_hidden_state
    return None


def hook_layer(
    model: nn.Module, layer: str, store: Callable[[torch.Tensor | None], None]
) -> torch.utils.hooks.RemovableHandle:
    """On every forward pass, ``store`` the tensor a layer name means: the module's output, or
    for ``"<module>:input"`` its input (None when it is not a tensor). Remove the returned
    handle when done."""
    module, wants_input = resolve_module(model, layer)
    if wants_input:
        return module.register_forward_pre_hook(lambda _m, args: store(first_tensor(args)))
    return module.register_forward_hook(lambda _m, _args, out: store(first_tensor(out)))


def _forward_with_hooks(model: nn.Module, sample: torch.Tensor, handles: list) -> None:
    """One inference pass of ``sample``; the given hook handles are removed afterwards."""
    try:
        with torch.inference_mode():
            model(sample)
    finally:
        for handle in handles:
            handle.remove()


def list_layers(model: nn.Module, sample: torch.Tensor) -> list[LayerInfo]:
    """Every named module's output shape (and the classifier-style ``:input`` of each Linear),
    from one dry forward pass of ``sample`` (a small batch)."""
    shapes: dict[str, tuple[str, tuple[int, ...]]] = {}
    handles = []
    for name, module in model.named_modules():
        if not name:
            continue

        def hook(mod, args, output, name=name):
            tensor = first_tensor(output)
            if tensor is not None:
                shapes[name] = (type(mod).__name__, tuple(tensor.shape[1:]))
            if isinstance(mod, nn.Linear) and args:
                shapes[name + INPUT_SUFFIX] = ("input", tuple(args[0].shape[1:]))

        handles.append(module.register_forward_hook(hook))
    _forward_with_hooks(model, sample, handles)
    order = [n for n, _ in model.named_modules() if n]
    infos = []
    for name in order:
        for key in (name + INPUT_SUFFIX, name):
            if key in shapes:
                infos.append(LayerInfo(key, shapes[key][0], shapes[key][1]))
    return infos


def default_layers(
    model: nn.Module, classifier: str, sample: torch.Tensor | None = None
) -> list[str]:
    """Every top-level block output, then the classifier input (the NC features).

    With a ``sample`` batch, a block whose output *is* the classifier input (the same tensor,
    as for the last block of an MLP) is listed once, as the classifier input, and a block the
    forward pass never calls is left out.
    """
    blocks = block_names(model, classifier)
    if sample is not None:
        seen: dict[str, object] = {}
        modules = dict(model.named_modules())
        handles = [
            modules[name].register_forward_hook(
                lambda _m, _a, out, name=name: seen.__setitem__(name, out)
            )
            for name in blocks
        ]
        handles.append(
            modules[classifier].register_forward_pre_hook(
                lambda _m, args: seen.__setitem__(classifier + INPUT_SUFFIX, args[0])
            )
        )
        _forward_with_hooks(model, sample, handles)
        final = seen.get(classifier + INPUT_SUFFIX)
        # blocks the forward pass never calls (a weight read directly, an unused head) have no
        # output to measure
        blocks = [name for name in blocks if name in seen and seen[name] is not final]
    return [*blocks, classifier + INPUT_SUFFIX]
