"""How many CPU threads the metric engine's operations use, and how its work is spread over them.

On a busy machine (a shared container, a CI runner, a neighbour's training job) every parallel
region waits for its slowest thread, and a thread the kernel has descheduled arrives a time slice
late: a 128×128 ``eigvalsh`` on two threads was measured at 2.2 s on a loaded 2-core machine and
2.7 ms on one. The streaming passes are mostly element-wise work (upcasts, residuals, scatters,
arg-max) between a few GEMMs, and each element-wise op parallelised inside torch is a region of its
own: beside two busy processes on two cores, C = 100 took 2.9× the float64 Gram with torch's
threads, against 1.8× with every op on one thread (and the Gram's own two threads).

So the engine parallelises *coarsely* (:func:`run_queues`): independent pieces of work — the
chunks of a pass, each into one of a few partial sums (:func:`slot_count`), or the solvers of
the finish — run on worker threads, every torch op of a worker on one thread. A worker the kernel
descheduled delays only its own piece; the others take the remaining pieces. Nothing waits at a
barrier per op. The order of every sum is fixed by the pieces, not by the threads that ran them,
so the metrics are bit-for-bit the same on 1, 2 or 16 threads (tested).

Small work runs on one thread (:func:`threads_for`); the finishing solvers too
(:func:`solver_threads`). An analysis runs its glue (loading a checkpoint, building the model,
small tensor ops between the passes) inside :func:`single_threaded`, and the large pieces take
the caller's threads back (:func:`full_threads`, :func:`caller_threads`): beside two busy
processes, a 25-checkpoint digits analysis took 2.4× its idle time with torch's threads on every
op and 1.6× with one, and the same time idle either way.

``torch.set_num_threads`` is process-wide; a reference count makes nested and concurrent uses
restore the caller's setting exactly once, when the last one leaves.

torch's pools are not the only ones: numpy and scipy call their own OpenBLAS, whose one
process-wide pool takes every core. While workers of :func:`run_queues` run side by side, that
pool is held to one thread (:func:`blas_threads`, through threadpoolctl), so a piece that calls
numpy's linear algebra does not start two more threads on a machine whose cores the workers
already fill. A process that shares the machine with others of its kind (a server's job
workers) takes its share of the cores for every pool at once (:func:`limit_process_threads`).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from typing import TypeVar

import torch
from threadpoolctl import ThreadpoolController, threadpool_limits

#: Below this many floating-point operations an operation runs on one thread (≈ 1 ms of one core).
SMALL_WORK_FLOPS = 5e7
#: Below this many floating-point operations (≈ 20 ms of one core) work is not spread over
#: threads: starting and joining workers costs little on an idle machine, but on a busy one a
#: worker may wait a time slice for a core, and many small finalizes (one per checkpoint and
#: layer) lost more than they gained.
PARALLEL_WORK_FLOPS = 1e9
#: Most partial sums a pass keeps (the same on every machine, so that sums add in one order).
MAX_SLOTS = 4
#: Memory the partial sums of a pass may take beyond its own accumulators.
SLOT_BYTES = 2**28

_lock = threading.Lock()
_depth = 0
_saved_threads = 1
_local = threading.local()
_pools: tuple[int, ThreadpoolController] | None = None
_Item = TypeVar("_Item")
_Result = TypeVar("_Result")


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


def _blas_pools() -> ThreadpoolController:
    """threadpoolctl's controller of the loaded native thread pools, found once (4 ms) and again
    only after more modules were imported (a new extension may bring its own BLAS)."""
    global _pools
    with _lock:
        if _pools is None or _pools[0] != len(sys.modules):
            _pools = (len(sys.modules), ThreadpoolController())
        return _pools[1]


@contextmanager
def blas_threads(threads: int) -> Iterator[None]:
    """numpy's and scipy's BLAS (OpenBLAS: one pool for the whole process) on at most
    ``threads`` threads in the enclosed code, restored after; torch's pools are left alone.

    >>> import numpy, threadpoolctl
    >>> with blas_threads(1):
    ...     {p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"}
    {1}
    """
    with _blas_pools().limit(limits=threads, user_api="blas"):
        yield


def limit_process_threads(threads: int) -> None:
    """Every thread pool of this process — torch's, BLAS, OpenMP — at most ``threads`` threads,
    for good: for a process that shares the machine with others like it (a server's job worker).
    """
    threads = max(1, int(threads))
    torch.set_num_threads(threads)
    threadpool_limits(limits=threads)


def process_share(processes: int) -> int:
    """The cores of this process's CPU set divided among ``processes`` (at least one each).

    >>> process_share(1) == len(os.sched_getaffinity(0)), process_share(10**6)
    (True, 1)
    """
    return max(1, len(os.sched_getaffinity(0)) // max(1, processes))


def caller_threads() -> int:
    """The thread count of the outermost caller: torch's, or what :func:`single_threaded` saved
    when inside one (the threads large work may use)."""
    with _lock:
        return _saved_threads if _depth > 0 else torch.get_num_threads()


@contextmanager
def full_threads() -> Iterator[None]:
    """Inside :func:`single_threaded` (outside a worker of :func:`run_queues`): the enclosed
    large work runs on the caller's thread count; anywhere else nothing changes.

    >>> import torch
    >>> before = torch.get_num_threads()
    >>> with single_threaded(), full_threads():
    ...     torch.get_num_threads() == before
    True
    """
    with _lock:
        threads = _saved_threads
        restore = _depth > 0 and threads > 1 and not in_worker()
    if not restore:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(1)


@contextmanager
def threads_for(flops: float, device: torch.device | str = "cpu") -> Iterator[None]:
    """One thread for CPU work under :data:`SMALL_WORK_FLOPS` operations; the caller's threads
    for larger work (:func:`full_threads`)."""
    if torch.device(device).type == "cpu" and flops < SMALL_WORK_FLOPS:
        with single_threaded():
            yield
    else:
        with full_threads():
            yield


@contextmanager
def solver_threads(device: torch.device | str = "cpu") -> Iterator[None]:
    """The finishing work of the metrics (LAPACK eigen/SVD solvers of size d or C, small GEMMs)
    on one CPU thread: those solvers gain little from a second thread, and under load a
    two-thread ``eigvalsh`` of d = 512 took 10× its idle time."""
    with threads_for(0.0, device):  # no work is too large for one thread here
        yield


def slot_count(num_chunks: int, slot_bytes: int, device: torch.device | str = "cpu") -> int:
    """How many partial sums a pass of ``num_chunks`` chunks keeps: chunk i adds into sum
    i mod S. S depends on the work and the memory each sum takes (``slot_bytes``), never on the
    thread count, so the order of the additions — and the result — is the same on any machine.
    One on an accelerator (its kernels are parallel already).

    >>> slot_count(25, 2**21), slot_count(1, 2**21), slot_count(25, 2**27), slot_count(25, 2**29)
    (4, 1, 3, 1)
    """
    if torch.device(device).type != "cpu":
        return 1
    extra = SLOT_BYTES // max(1, slot_bytes)  # sums beyond the first (which is the pass's own)
    return max(1, min(MAX_SLOTS, num_chunks, 1 + extra))


def in_worker() -> bool:
    """True inside a worker of :func:`run_queues` (nested work runs there, in order)."""
    return bool(getattr(_local, "worker", False))


def run_queues(
    queues: Sequence[Sequence[Callable[[], None]]],
    flops: float = float("inf"),
    threads: int | None = None,
) -> None:
    """Run every callable of every queue: a queue's callables one at a time in order, different
    queues at the same time on up to ``threads`` threads (default :func:`caller_threads`; the
    caller's one among them), each torch op of a worker on one thread.

    A free worker takes the next callable of any queue no other worker is in, so a worker the
    kernel has descheduled delays only its own queue. The first exception stops the others after
    their current callable and is raised here. When the whole work (``flops`` operations) is
    under :data:`PARALLEL_WORK_FLOPS`, or inside a worker, everything runs here in order on one
    thread; with one queue (or one thread) of larger work, here with the caller's threads.

    >>> done = []
    >>> first = [lambda: done.append("a1"), lambda: done.append("a2")]
    >>> run_queues([first, [lambda: done.append("b")]])
    >>> sorted(done), done.index("a1") < done.index("a2")
    (['a1', 'a2', 'b'], True)
    """
    busy_queues = [q for q in queues if len(q)]
    workers = min(caller_threads() if threads is None else threads, len(busy_queues))
    small = flops < PARALLEL_WORK_FLOPS
    if workers <= 1 or in_worker() or small:
        with single_threaded() if small else full_threads():
            for queue in busy_queues:
                for work in queue:
                    work()
        return
    position = [0] * len(busy_queues)
    taken = [False] * len(busy_queues)
    errors: list[BaseException] = []
    ready = threading.Condition()

    def take() -> tuple[int, Callable[[], None]] | None:
        with ready:
            while not errors:
                waiting = False
                for index, queue in enumerate(busy_queues):
                    if position[index] < len(queue):
                        if not taken[index]:
                            taken[index] = True
                            position[index] += 1
                            return index, queue[position[index] - 1]
                        waiting = True
                if not waiting:
                    return None
                ready.wait()
            return None

    # grad and inference mode are per thread: a helper runs under the caller's (tensors made in
    # inference mode can be updated in place only there)
    inference, grad = torch.is_inference_mode_enabled(), torch.is_grad_enabled()

    def work_loop() -> None:
        _local.worker = True
        # a new thread's OpenMP setting is the process default, and MKL's GEMM and LAPACK read it
        # (not torch's): without this a worker's solver ran on two threads, giving other bits
        torch.set_num_threads(1)
        try:
            with torch.inference_mode(inference), torch.set_grad_enabled(grad):
                _work_loop()
        finally:
            _local.worker = False

    def _work_loop() -> None:
        while (item := take()) is not None:
            index, work = item
            try:
                work()
            except BaseException as error:  # raised in the caller, after the others stop
                with ready:
                    errors.append(error)
            finally:
                with ready:
                    taken[index] = False
                    ready.notify_all()

    with single_threaded(), blas_threads(1):
        helpers = [threading.Thread(target=work_loop, daemon=True) for _ in range(workers - 1)]
        for helper in helpers:
            helper.start()
        work_loop()
        for helper in helpers:
            helper.join()
    if errors:
        raise errors[0]


def run_in_slots(
    items: Sequence[_Item],
    num_slots: int,
    work: Callable[[int, _Item], None],
    flops: float = float("inf"),
) -> None:
    """``work(slot, item)`` for every item, item i in slot i mod ``num_slots``: a slot's items in
    order, one at a time (they add into that slot's partial sums), the slots in parallel
    (:func:`run_queues`).

    >>> seen = {0: [], 1: []}
    >>> run_in_slots(range(5), 2, lambda slot, item: seen[slot].append(item))
    >>> seen
    {0: [0, 2, 4], 1: [1, 3]}
    """
    run_queues(
        [
            [partial(work, slot, item) for item in items[slot::num_slots]]
            for slot in range(num_slots)
        ],
        flops=flops,
    )


def run_tasks(
    tasks: Mapping[str, Callable[[], _Result]],
    flops: float = float("inf"),
    threads: int | None = None,
) -> dict[str, _Result]:
    """Every task's result by name, the tasks run side by side (:func:`run_queues`; list the
    longest first: a free worker takes the first task not taken).

    >>> run_tasks({"a": lambda: 1, "b": lambda: 2}, flops=1e10)
    {'a': 1, 'b': 2}
    """
    results: dict[str, _Result] = {}

    def run(name: str) -> None:
        results[name] = tasks[name]()

    run_queues([[partial(run, name)] for name in tasks], flops=flops, threads=threads)
    return {name: results[name] for name in tasks}
