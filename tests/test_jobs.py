"""The background job runner de-duplicates, reports progress, cancels and reports errors."""

from __future__ import annotations

import threading
import time

from ncviz.errors import DataError
from ncviz.server.jobs import JobRunner


def _wait(job):
    """The job once it has finished: waits on its state (the bound only stops a hung test)."""
    assert job.wait(600), f"job {job.label} never finished"
    return job


def test_identical_requests_share_one_job():
    runner = JobRunner()
    calls = []
    gate = threading.Event()

    def work(x, progress):
        calls.append(x)
        gate.wait(5)
        progress(1, 1, "done")
        return x * 2

    a = runner.submit("k", "job", work, 21, isolated=False)
    b = runner.submit("k", "job", work, 21, isolated=False)
    gate.set()
    assert a is b and _wait(a).result == 42 and calls == [21]
    assert a.fraction == 1.0 and a.status == "done"


def test_cancel_stops_a_running_job():
    runner = JobRunner()
    started = threading.Event()

    def slow(progress):
        for i in range(1000):
            started.set()
            progress(i, 1000, "working")
            time.sleep(0.005)

    job = runner.submit("slow", "slow", slow, isolated=False)
    started.wait(5)
    job.cancel()
    assert _wait(job).status == "cancelled"
    assert (
        runner.submit("slow", "slow", lambda progress: 1, isolated=False) is not job
    )  # a new try after cancel


def test_errors_become_one_line_messages():
    runner = JobRunner()

    def user_error(progress):
        raise DataError("the data file is empty; upload another.")

    def bug(progress):
        raise RuntimeError("boom\nsecond line")

    assert (
        _wait(runner.submit("a", "a", user_error, isolated=False)).error
        == "the data file is empty; upload another."
    )
    failed = _wait(runner.submit("b", "b", bug, isolated=False))
    assert failed.status == "failed" and failed.error == "unexpected RuntimeError: boom"


def test_finished_jobs_are_kept_in_a_bounded_lru():
    runner = JobRunner(max_finished=3)
    jobs = [
        runner.submit(f"k{i}", "job", lambda progress, i=i: i, isolated=False) for i in range(5)
    ]
    for job in jobs:
        assert job.wait(60) and job.status == "done"
    runner.submit("k5", "job", lambda progress: 5, isolated=False).wait(60)
    runner.get("k2")  # recently used: kept
    runner.submit("k6", "job", lambda progress: 6, isolated=False).wait(60)
    kept = [key for key in (f"k{i}" for i in range(7)) if runner.get(key) is not None]
    assert "k2" in kept and "k0" not in kept and len(kept) <= 4
