"""The one timer of the benchmarks: best wall time of a few runs, CUDA work included."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def best_of(fn: Callable[[], object], repeats: int = 3) -> float:
    """Shortest of ``repeats`` wall times of ``fn()``; queued CUDA work is waited for before
    and after each run, so GPU time is counted where it is spent."""
    best = float("inf")
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best
