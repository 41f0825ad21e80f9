"""How many CPU threads the metric engine's operations use.

On a busy machine (a shared container, a CI runner, a neighbour's training job) every parallel
region waits for its slowest thread, and a thread the kernel has descheduled arrives a time slice
late: a 128×128 ``eigvalsh`` on two threads was measured at 2.2 s on a loaded 2-core machine and
2.7 ms on one. Work this small gains nothing from a second thread even on a quiet machine, so
:func:`threads_for` runs it on one thread, and leaves large GEMMs (where threads pay) alone.

The streaming passes are mostly memory-bound element-wise work (upcasts, residuals, scatters,
arg-max) between a few large GEMMs. Each element-wise op is a parallel region of its own: on an
idle machine two threads make a pass faster (C = 100: 1.27× the float64 Gram against 1.62× on
one), but beside two busy processes each region waits for a descheduled thread (3.06× against
2.20× on one). Which one wins depends on the machine's load *now*, so a :class:`ThreadChooser`
times the chunks of a pass on both and keeps to the faster, trying the other every few chunks;
on one thread, the large GEMMs get the caller's threads back (:func:`gemm_threads`). The metrics
do not depend on the choice (tests pin them to 1e-12 across thread counts).

``torch.set_num_threads`` is process-wide; a reference count makes nested and concurrent uses
restore the caller's setting exactly once, when the last one leaves.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

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
def solver_threads(device: torch.device | str = "cpu") -> Iterator[None]:
    """The finishing work of the metrics (LAPACK eigen/SVD solvers of size d or C, small GEMMs)
    on one CPU thread: those solvers gain little from a second thread, and under load a
    two-thread ``eigvalsh`` of d = 512 took 10× its idle time; :func:`gemm_threads` inside gives
    a large GEMM the caller's thread count back."""
    with threads_for(0.0, device):  # no work is too large for one thread here
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


class ThreadChooser:
    """One thread or the caller's thread count for a repeated piece of CPU work (the chunks of a
    statistics pass), whichever has been faster per unit of work lately.

    Each option is timed once, then the faster is used, and the other is tried again every
    ``explore_every``-th run, so a change of load (a neighbour's job starting or ending) is
    followed within a few chunks. Costs are exponential moving averages of seconds per unit.

    >>> chooser = ThreadChooser()
    >>> chooser.record(1, 2.0); chooser.record(2, 1.0)
    >>> [chooser.choice(2) for _ in range(8)]
    [2, 2, 2, 2, 2, 2, 2, 1]
    >>> chooser.choice(1)  # one thread available: nothing to choose
    1
    """

    def __init__(self, explore_every: int = 8, smoothing: float = 0.5) -> None:
        self.explore_every, self.smoothing = explore_every, smoothing
        self._cost: dict[int, float] = {}
        self._runs = 0
        self._lock = threading.Lock()

    def choice(self, available: int) -> int:
        """The thread count for the next run, given the caller's ``available`` count."""
        if available <= 1:
            return 1
        with self._lock:
            options = (available, 1)
            for option in options:
                if option not in self._cost:
                    return option
            self._runs += 1
            best = min(options, key=self._cost.__getitem__)
            if self._runs % self.explore_every == 0:
                return options[1] if best == options[0] else options[0]
            return best

    def record(self, threads: int, seconds_per_unit: float) -> None:
        """Fold one run's cost into its option's average."""
        with self._lock:
            old = self._cost.get(threads)
            a = self.smoothing
            self._cost[threads] = (
                seconds_per_unit if old is None else a * seconds_per_unit + (1 - a) * old
            )

    @contextmanager
    def run(self, units: float, device: torch.device | str = "cpu") -> Iterator[None]:
        """Run the enclosed CPU work of ``units`` (e.g. rows × d) on the chosen thread count and
        time it; work under ``SMALL_WORK_FLOPS`` always runs on one thread, other devices as
        they are."""
        if torch.device(device).type != "cpu" or units < SMALL_WORK_FLOPS:
            with threads_for(units, device):
                yield
            return
        threads = self.choice(torch.get_num_threads())
        start = time.perf_counter()
        with single_threaded() if threads == 1 else nullcontext():
            yield
        self.record(threads, (time.perf_counter() - start) / units)


#: The choosers of the two statistics passes (process-wide: the load is the machine's).
FIRST_PASS = ThreadChooser()
SECOND_PASS = ThreadChooser()
