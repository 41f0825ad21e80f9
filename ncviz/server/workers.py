"""Run work on user input in a child process with a memory and a time budget.

A shared dashboard must survive any upload: an analysis that would need 13 GB, or loops for an
hour, must fail for its own session only. :func:`run_in_worker` runs a function of ncviz in a
child forked from a *fork server* (a clean process that imported ncviz and torch once, so a worker
starts in tens of milliseconds, not seconds) with:

* memory: ``RLIMIT_DATA`` (private writable memory: heap and anonymous mappings) set to the
  child's current use plus ``NCVIZ_WORKER_MEMORY_GB`` (default: half the machine's memory, at most
  8 GB); an allocation beyond it fails inside the child (``MemoryError``) instead of waking the
  kernel's OOM killer for the whole container; ``RLIMIT_DATA`` leaves address-space reservations
  (CUDA's) alone, unlike ``RLIMIT_AS``;
* time: ``NCVIZ_WORKER_TIMEOUT_S`` (default 3600 s), after which the child is killed;
* threads: ``NCVIZ_WORKER_THREADS``, else the machine's cores divided among the jobs that may run
  at once, for torch, BLAS and OpenMP alike (two jobs on two cores must not run eight threads);
* progress and cancel: the child's ``progress(done, total, message)`` calls reach the caller's
  callback; when that raises (a cancelled job), the child is killed.

Any way the child ends — an :class:`~ncviz.errors.NcvizError`, another exception, a signal — comes
back as one :class:`WorkerError` line; the parent process is never at risk.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from ncviz.errors import NcvizError
from ncviz.extract.budget import data_in_use
from ncviz.metrics.threads import limit_process_threads, process_share

DEFAULT_TIMEOUT_S = 3600.0
MAX_DEFAULT_MEMORY_GB = 8.0
_POLL_S = 0.05
# imported once by the fork server, so that no worker pays for them (scikit-learn alone, for the
# digits data, takes ~0.6 s to import)
PRELOAD = ["ncviz.analysis", "ncviz.server.requests", "sklearn.datasets", "scipy.optimize"]
_context_lock = threading.Lock()
_context: Any = None


class WorkerError(NcvizError):
    """The work failed, ran out of its memory or time budget, or its process died."""


def memory_budget_bytes() -> int:
    """``NCVIZ_WORKER_MEMORY_GB``, else half the machine's memory (at most 8 GB)."""
    value = os.environ.get("NCVIZ_WORKER_MEMORY_GB")
    if value:
        return int(float(value) * 2**30)
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return int(min(total / 2, MAX_DEFAULT_MEMORY_GB * 2**30))


def threads_per_worker(concurrent: int) -> int:
    """``NCVIZ_WORKER_THREADS``, else this machine's cores divided among ``concurrent`` jobs."""
    value = os.environ.get("NCVIZ_WORKER_THREADS")
    return max(1, int(value)) if value else process_share(concurrent)


def timeout_seconds() -> float:
    return float(os.environ.get("NCVIZ_WORKER_TIMEOUT_S", DEFAULT_TIMEOUT_S))


def _context_with_fork_server() -> Any:
    global _context
    with _context_lock:
        if _context is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(PRELOAD)
            _context = context
        return _context


def _child(
    connection: Any,
    fn: Callable[..., Any],
    args: tuple,
    kwargs: dict,
    budget: int,
    threads: int | None,
) -> None:
    """Worker body: limit memory (and threads), run ``fn``, send progress, then ("ok", result)
    or an error."""
    limit = data_in_use() + budget
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    if threads is not None:
        limit_process_threads(threads)

    def progress(done: int, total: int, message: str = "") -> None:
        connection.send(("progress", (done, total, message)))

    try:
        result = fn(*args, progress=progress, **kwargs)
        connection.send(("ok", result))
    except NcvizError as error:
        connection.send(("error", str(error)))
    except MemoryError:
        connection.send(("memory", ""))
    except Exception as error:  # one line for the user; no traceback crosses to the page
        if _out_of_memory(error):
            connection.send(("memory", ""))
            return
        first = str(error).splitlines()[0][:200] if str(error) else ""
        connection.send(("error", f"unexpected {type(error).__name__}: {first}"))
    finally:
        connection.close()


def _out_of_memory(error: Exception) -> bool:
    """An allocation that failed outside Python's own ``MemoryError``: torch's CPU allocator
    raises ``RuntimeError("… can't allocate memory …")`` at the budget, CUDA its
    ``OutOfMemoryError``."""
    text = str(error)
    return (
        type(error).__name__ == "OutOfMemoryError"
        or "can't allocate memory" in text
        or "Cannot allocate memory" in text
    )


def _memory_message(budget: int) -> str:
    return (
        f"the analysis needed more than {budget / 2**30:.1f} GB of memory and was stopped; "
        "analyse fewer samples or layers, or ask the operator to raise NCVIZ_WORKER_MEMORY_GB."
    )


def run_in_worker(
    fn: Callable[..., Any],
    *args: Any,
    progress: Callable[[int, int, str], None] | None = None,
    memory_bytes: int | None = None,
    timeout_s: float | None = None,
    threads: int | None = None,
    **kwargs: Any,
) -> Any:
    """``fn(*args, progress=…, **kwargs)`` in a budgeted child process; its result, or a
    :class:`WorkerError`. ``threads``: every thread pool of the child at most this many (default:
    as the fork server's). ``fn`` and its arguments must be picklable (module-level functions and
    plain data); the result comes back by pickle from our own child, never from a file."""
    budget = memory_budget_bytes() if memory_bytes is None else int(memory_bytes)
    limit_s = timeout_seconds() if timeout_s is None else float(timeout_s)
    context = _context_with_fork_server()
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_child,
        args=(sender, fn, args, kwargs, budget, threads),
        daemon=True,
        name="ncviz-worker",
    )
    process.start()
    sender.close()
    deadline = time.monotonic() + limit_s
    try:
        while True:
            if receiver.poll(_POLL_S):
                try:
                    kind, payload = receiver.recv()
                except (EOFError, OSError):
                    break  # the child died without a word: see its exit code below
                if kind == "progress":
                    if progress is not None:
                        progress(*payload)  # may raise (cancel): the child is killed below
                    continue
                if kind == "ok":
                    return payload
                if kind == "memory":
                    raise WorkerError(_memory_message(budget))
                raise WorkerError(payload)
            if not process.is_alive() and not receiver.poll(0):
                break
            if time.monotonic() > deadline:
                raise WorkerError(
                    f"the analysis took longer than {limit_s:.0f} s and was stopped; analyse "
                    "less, or ask the operator to raise NCVIZ_WORKER_TIMEOUT_S."
                )
        process.join(5)
        code = process.exitcode
        if code == -signal.SIGKILL:  # the kernel's OOM killer, or an operator
            raise WorkerError(_memory_message(budget))
        if code is not None and code < 0:
            raise WorkerError(f"the analysis process crashed (signal {-code}); nothing else did.")
        raise WorkerError(f"the analysis process ended unexpectedly (exit code {code}).")
    finally:
        if process.is_alive():
            process.kill()
        process.join(5)
        receiver.close()
