"""What both extraction loops share: the options, the forward hooks that keep each chosen
layer's output, the plan of a layer (flatten or average-pool its map), and the classifier
arguments a layer's statistics take."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ncviz.errors import OptionError
from ncviz.extract.layers import INPUT_SUFFIX, hook_layer
from ncviz.metrics import CollapseStatistics
from ncviz.metrics.classification import class_rows_for

ProgressFn = Callable[[int, int, str], None]


POOL_CHOICES = ("auto", "flatten", "avg")


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
    # data with groups: every group's own statistics of this layer (both passes done)
    groups: dict[str, CollapseStatistics] = field(default_factory=dict)


def reduce_output(output: torch.Tensor, pooled: bool) -> torch.Tensor:
    """N×d features: spatial dims averaged (``pooled``) or flattened with the channels."""
    if output.ndim > 2 and pooled:
        output = output.mean(dim=tuple(range(2, output.ndim)))
    return output.reshape(len(output), -1)


class Hooks:
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
        self.outputs[layer] = tensor if self.raw else reduce_output(tensor, self.pooled[layer])

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


def layer_plan(layer: str, shape: tuple[int, ...], options: ExtractOptions) -> LayerFeatures:
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


def classifier_arguments(
    layer: LayerFeatures, classifier: tuple[str, nn.Module] | None, classes: np.ndarray
) -> dict:
    """The statistics' classifier arguments (W, b, class rows) for ``layer`` if the classifier
    reads it, else none."""
    if classifier is None or layer.name != classifier[0] + INPUT_SUFFIX:
        return {}
    head_weight = classifier[1].weight
    assert isinstance(head_weight, torch.Tensor)  # a linear head's (or ONNX initialiser's) W
    weight = head_weight.detach().to("cpu", torch.float64)
    bias = getattr(classifier[1], "bias", None)
    bias = None if bias is None else bias.detach().to("cpu", torch.float64)
    if weight.shape[1] != layer.dim:
        return {}
    rows = class_rows_for(weight.shape[0], classes)
    return {"weight": weight, "bias": bias, "class_rows": rows}
