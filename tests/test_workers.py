"""Budgeted worker processes: results, progress, cancel, memory and time limits, crashes."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from ncviz.analysis import analyze
from ncviz.demos.catalog import bundled_runs_dir
from ncviz.server.workers import WorkerError, run_in_worker


def allocate(gigabytes: float, progress) -> int:
    progress(0, 1, "allocating")
    block = np.ones(int(gigabytes * 2**30 / 8))
    return int(block.size)


def sleep_forever(progress) -> None:
    while True:
        progress(0, 1, "sleeping")
        time.sleep(0.05)


def die(progress) -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def add(a: int, b: int, progress) -> int:
    for k in range(3):
        progress(k + 1, 3, f"step {k + 1}")
    return a + b


def thread_pools(progress) -> tuple[int, set[int]]:
    """torch's thread count and the thread counts of the loaded BLAS pools, in the worker."""
    import threadpoolctl
    import torch

    blas = {p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"}
    return torch.get_num_threads(), blas


def test_a_worker_takes_its_share_of_the_cores_in_every_pool(monkeypatch):
    assert run_in_worker(thread_pools, threads=1) == (1, {1})
    torch_threads, blas = run_in_worker(thread_pools, threads=3)
    assert torch_threads == 3 and blas == {3}
    # a job runner's isolated jobs divide the cores among the jobs that may run at once
    from ncviz.server.jobs import JobRunner

    monkeypatch.setenv("NCVIZ_WORKER_THREADS", "1")
    job = JobRunner(workers=2).submit("pools", "pools", thread_pools, isolated=True)
    assert job.wait(300) and job.result == (1, {1})
    monkeypatch.delenv("NCVIZ_WORKER_THREADS")
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(8)))
    job = JobRunner(workers=2).submit("pools4", "pools", thread_pools, isolated=True)
    assert job.wait(300) and job.result == (4, {4})


def test_result_and_progress_come_back():
    seen = []
    assert run_in_worker(add, 2, 3, progress=lambda *p: seen.append(p)) == 5
    assert seen == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]


def test_an_analysis_in_a_worker_equals_one_in_process():
    run = bundled_runs_dir() / "digits-mlp"
    here = analyze(run, cache=False, checkpoint_filter=lambda p: "0600" in p.name)
    there = run_in_worker(analyze, run, cache=False, checkpoint_filter=None)
    final = there.table[there.table["checkpoint"] == "epoch_0600.safetensors"]
    assert np.allclose(final["value"].to_numpy(), here.table["value"].to_numpy(), equal_nan=True)


def test_memory_beyond_the_budget_fails_in_the_worker_only():
    with pytest.raises(WorkerError, match=r"needed more than 0\.5 GB of memory"):
        run_in_worker(allocate, 2.0, memory_bytes=2**29)
    assert run_in_worker(allocate, 0.1, memory_bytes=2**29) == int(0.1 * 2**30 / 8)


def test_time_limit_and_cancel_kill_the_worker():
    with pytest.raises(WorkerError, match="longer than 1 s"):
        run_in_worker(sleep_forever, timeout_s=1)

    class Cancelled(Exception):
        pass

    def cancel(*_):
        raise Cancelled

    with pytest.raises(Cancelled):
        run_in_worker(sleep_forever, progress=cancel)


def test_a_crashing_worker_is_one_line():
    with pytest.raises(WorkerError, match="crashed") as info:
        run_in_worker(die)
    assert "\n" not in str(info.value)


def test_user_errors_come_back_as_they_are(tmp_path):
    with pytest.raises(WorkerError, match="does not exist"):
        run_in_worker(analyze, tmp_path / "missing")


def test_an_analysis_too_big_for_its_budget_fails_alone():
    """An upload whose analysis needs GBs: its worker stops, this process and the next
    analysis carry on."""
    from ncviz.demos.catalog import bundled_runs_dir

    checkpoint = bundled_runs_dir() / "digits-mlp" / "epoch_0600.safetensors"
    spec = {
        "name": "mlp",
        "kwargs": {
            "in_features": 64,
            "num_classes": 10,
            "widths": [128, 128, 128],
            "batchnorm": True,
        },
    }
    huge = "builtin:gaussian?classes=10&dim=64&n=1000000"  # 10 M × 64 floats ≈ 2.4 GB
    with pytest.raises(WorkerError, match=r"needed more than 0\.5 GB") as info:
        run_in_worker(analyze, checkpoint, huge, model=spec, cache=False, memory_bytes=2**29)
    assert "\n" not in str(info.value)
    small = run_in_worker(analyze, checkpoint, "builtin:digits", model=spec, cache=False)
    assert small.metrics_at("epoch_0600.safetensors", "classifier:input")["accuracy"] == 1.0
