"""A process-wide background job runner: long analyses never run inside a page script.

Identical requests (same key) share one job; a job on user input is submitted ``isolated`` and
then runs in a budgeted worker process (:mod:`ncviz.server.workers`), so the runner is the one
place that decides where user input is computed. Pages poll a job's progress and may cancel it.
A job's function receives ``progress(done, total, message)``; once cancel is requested that call
raises :class:`Cancelled`, which unwinds the work (cache writes are atomic, so nothing
half-written stays; a worker process is killed).
Finished jobs are kept for reuse in a bounded least-recently-used list (``MAX_FINISHED_JOBS``), so
a long-lived server does not hold every result it ever computed.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ncviz.errors import NcvizError
from ncviz.server.workers import run_in_worker, threads_per_worker

log = logging.getLogger(__name__)
MAX_FINISHED_JOBS = 64


class Cancelled(Exception):
    """Raised inside a job whose cancellation was requested."""


@dataclass
class Job:
    key: str
    label: str
    status: str = "queued"  # queued | running | done | failed | cancelled
    done: int = 0
    total: int = 0
    message: str = ""
    result: Any = None
    error: str | None = None
    partial: Any = None  # work in progress a page may show (e.g. a training history so far)
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    _ended: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def fraction(self) -> float:
        return 0.0 if self.total <= 0 else min(1.0, self.done / self.total)

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed", "cancelled")

    def progress(self, done: int, total: int, message: str = "") -> None:
        if self._cancel.is_set():
            raise Cancelled
        self.done, self.total, self.message = done, total, message

    def cancel(self) -> None:
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has finished (or ``timeout`` passed); True if it finished."""
        return self._ended.wait(timeout)


class JobRunner:
    def __init__(self, workers: int = 2, max_finished: int = MAX_FINISHED_JOBS) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ncviz-job")
        self.workers = workers
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self.max_finished = max_finished

    def submit(
        self,
        key: str,
        label: str,
        fn: Callable[..., Any],
        *args: Any,
        isolated: bool,
        **kwargs: Any,
    ) -> Job:
        """Start ``fn(*args, progress=…, **kwargs)`` unless a live or finished job has this key.

        ``isolated``: run it in a worker process with the memory and time budgets
        (:func:`~ncviz.server.workers.run_in_worker`) — every job that reads or runs user
        input; ``fn`` and its arguments must then be picklable (module-level functions, plain
        data, :mod:`ncviz.sources` objects), and it gets its share of the cores
        (:func:`~ncviz.server.workers.threads_per_worker`). Otherwise it runs on this process's
        thread pool."""
        if isolated:
            fn, args = run_in_worker, (fn, *args)
            kwargs = {**kwargs, "threads": threads_per_worker(self.workers)}
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and job.status not in ("failed", "cancelled"):
                self._jobs.move_to_end(key)
                return job
            job = Job(key=key, label=label)
            self._jobs[key] = job
            self._forget_old()
        self._pool.submit(self._run, job, fn, args, kwargs)
        return job

    def get(self, key: str) -> Job | None:
        with self._lock:
            job = self._jobs.get(key)
            if job is not None:
                self._jobs.move_to_end(key)
            return job

    def jobs(self) -> list[Job]:
        """Every job held: the live ones and the most recently used finished ones."""
        with self._lock:
            return list(self._jobs.values())

    def unfinished(self) -> list[Job]:
        """Jobs queued or running now."""
        with self._lock:
            return [job for job in self._jobs.values() if not job.finished]

    def _forget_old(self) -> None:
        """Drop the least recently used finished jobs beyond ``max_finished`` (never live ones)."""
        finished = [key for key, job in self._jobs.items() if job.finished]
        for key in finished[: max(0, len(finished) - self.max_finished)]:
            del self._jobs[key]

    @staticmethod
    def _run(job: Job, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        job.status = "running"
        try:
            job.result = fn(*args, progress=job.progress, **kwargs)
            job.status = "done"
        except Cancelled:
            job.status, job.error = "cancelled", "cancelled"
        except NcvizError as error:
            job.status, job.error = "failed", str(error)
        except Exception as error:  # report in one line; the traceback goes to the server log
            log.exception("job %s failed", job.label)
            job.status = "failed"
            job.error = f"unexpected {type(error).__name__}: {str(error).splitlines()[0][:200]}"
        finally:
            job._ended.set()


_default: JobRunner | None = None
_default_lock = threading.Lock()


def default_runner() -> JobRunner:
    """The runner shared by every session of this process."""
    global _default
    with _default_lock:
        if _default is None:
            _default = JobRunner()
        return _default
