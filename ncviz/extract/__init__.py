"""Extraction: layer hooks, batched forward passes on the best device, the activation cache."""

from ncviz.cache import ActivationCache, cache_key, default_cache_dir
from ncviz.extract.extractor import best_device, extract
from ncviz.extract.layers import INPUT_SUFFIX, LayerInfo, default_layers, list_layers
from ncviz.extract.plans import ExtractOptions, LayerFeatures

__all__ = [
    "INPUT_SUFFIX",
    "ActivationCache",
    "ExtractOptions",
    "LayerFeatures",
    "LayerInfo",
    "best_device",
    "cache_key",
    "default_cache_dir",
    "default_layers",
    "extract",
    "list_layers",
]
