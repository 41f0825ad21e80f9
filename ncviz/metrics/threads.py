"""How many CPU threads the metric engine's operations use.

On a busy machine (a shared container, a CI runner, a neighbour's training job) every parallel
region waits for its slowest thread, and a thread the kernel has descheduled arrives a time slice
late: a 128×128 ``eigvalsh`` on two threads was measured at 2.2 s on a loaded 2-core machine and
2.7 ms on one. Work this small gains nothing from a second thread even on a quiet machine, so
:func:`threads_for` runs it on one thread, and leaves large GEMMs (where threads pay) alone.

The streaming passes are mostly memory-bound element-wise work (upcasts, residuals, scatters,
arg-max) between a few large GEMMs. Each element-wise op is a parallel region of its own, and on
a loaded machine each one waits for a descheduled thread: the two-thread engine took 2–3× its
one-thread time beside two busy processes. So the passes run on one thread
(:func:`streaming_threads`) and hand the caller's threads back only to their large GEMMs
(:func:`gemm_threads`).

``torch.set_num_threads`` is process-wide; a reference count makes nested and concurrent uses
restore the caller's setting exactly once, when the last one leaves.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

#: Below this many floating-point operations an operation runs on one thread (≈ 1 ms of one core).
SMALL_WORK_FLOPS = 5e7

_lock = threading.Lock()
_depth = 0
_saved_threads = 1


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run the enclosed torch CPU operations on one thread, then restore the thread count.

    >>> import torch
    >>> before = torch.get_num_threads()
    >>> with single_threaded():
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    global _depth, _saved_threads
    with _lock:
        if _depth == 0:
            _saved_threads = torch.get_num_threads()
            if _saved_threads != 1:
                torch.set_num_threads(1)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and torch.get_num_threads() != _saved_threads:
                torch.set_num_threads(_saved_threads)


@contextmanager
def threads_for(flops: float, device: torch.device | str = "cpu") -> Iterator[None]:
    """One thread for CPU work under :data:`SMALL_WORK_FLOPS` operations; otherwise unchanged."""
    if torch.device(device).type == "cpu" and flops < SMALL_WORK_FLOPS:
        with single_threaded():
            yield
    else:
        yield


@contextmanager
def streaming_threads(device: torch.device | str = "cpu") -> Iterator[None]:
    """The element-wise work of a statistics pass on one CPU thread (see the module docstring);
    :func:`gemm_threads` inside gives large GEMMs the caller's thread count back."""
    if torch.device(device).type != "cpu":
        yield
        return
    with single_threaded():
        yield


@contextmanager
def gemm_threads(flops: float) -> Iterator[None]:
    """Inside :func:`single_threaded`: the enclosed GEMM of ``flops`` operations runs on the thread
    count the outermost caller had, when it is large enough to gain from them
    (``SMALL_WORK_FLOPS``); anywhere else it changes nothing.

    >>> import torch
    >>> before = torch.get_num_threads()
    >>> with single_threaded(), gemm_threads(1e9):
    ...     torch.get_num_threads() == before
    True
    """
    with _lock:
        restore = _depth > 0 and _saved_threads > 1 and flops >= SMALL_WORK_FLOPS
        threads = _saved_threads
    if not restore:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(1)
