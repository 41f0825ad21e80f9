"""The on-disk cache: activations, analysis results and theory sweeps under one root and one
size budget (see :mod:`ncviz.cache.store`)."""

from ncviz.cache.activations import ActivationCache, RowWriter
from ncviz.cache.results import ResultCache, checkpoint_stamp, results_key
from ncviz.cache.store import CacheStore, cache_key, default_cache_dir, default_max_bytes

__all__ = [
    "ActivationCache",
    "CacheStore",
    "ResultCache",
    "RowWriter",
    "cache_key",
    "checkpoint_stamp",
    "default_cache_dir",
    "default_max_bytes",
    "results_key",
]
