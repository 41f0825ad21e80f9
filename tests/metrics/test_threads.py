"""Metric work on threads: small work on one thread, large passes on workers whose ops run on one
thread each, and the same numbers, bit for bit, on any thread count."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import ncviz.metrics.stats as stats
from ncviz.metrics import collapse_result
from ncviz.metrics.threads import SMALL_WORK_FLOPS, single_threaded, threads_for


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_single_threaded_nests_and_restores(two_threads):
    with single_threaded():
        assert torch.get_num_threads() == 1
        with single_threaded():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_concurrent_users_restore_the_setting_once(two_threads):
    inside = threading.Barrier(2)
    seen = []

    def work():
        with single_threaded():
            inside.wait()
            seen.append(torch.get_num_threads())
            inside.wait()

    workers = [threading.Thread(target=work) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert seen == [1, 1]
    assert torch.get_num_threads() == 2


def test_threads_for_leaves_large_work_alone(two_threads):
    with threads_for(SMALL_WORK_FLOPS / 10):
        assert torch.get_num_threads() == 1
    with threads_for(SMALL_WORK_FLOPS * 10):
        assert torch.get_num_threads() == 2
    with threads_for(1.0, device="meta"):  # not a CPU: nothing to change
        assert torch.get_num_threads() == 2


def test_small_batches_run_here_on_one_thread_large_ones_on_workers(two_threads, monkeypatch):
    """A small batch is accumulated in the caller's thread on one thread; a large one is split
    over worker threads (the caller and one more), every torch op of a worker on one thread."""
    seen = []
    original = stats.add_upper_gram_

    def spy(accumulator, rows):
        seen.append((threading.get_ident(), torch.get_num_threads()))
        original(accumulator, rows)

    monkeypatch.setattr(stats, "add_upper_gram_", spy)
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 50)
    collapse_result(rng.standard_normal((200, 16)), labels)
    assert seen == [(threading.get_ident(), 1)]
    seen.clear()
    large = rng.standard_normal((20_000, 256)).astype(np.float32)
    collapse_result(large, np.arange(20_000) % 4)
    assert len(seen) == 5 and all(threads == 1 for _, threads in seen)
    assert len({ident for ident, _ in seen}) == 2  # two workers shared the five chunks
    assert torch.get_num_threads() == 2


def test_metrics_are_bit_for_bit_the_same_on_any_thread_count():
    """The same data on 1, 2, 3 threads and torch's default: every metric is the same number,
    bit for bit (the chunks add into partial sums in a fixed order, whoever runs them), so a
    result never depends on the machine or how busy it was."""
    rng = np.random.default_rng(3)
    classes = 600  # enough work that both the passes and the finish are spread over workers
    labels = rng.integers(0, classes, size=20_000)
    means = 2.0 * rng.standard_normal((classes, 256))
    features = (means[labels] + rng.standard_normal((20_000, 256))).astype(np.float32)
    weight = (means + 0.3 * rng.standard_normal(means.shape)).astype(np.float32)
    bias = rng.standard_normal(classes).astype(np.float32)
    before = torch.get_num_threads()
    results = {}
    try:
        for count in (1, 2, 3, before):
            torch.set_num_threads(count)
            results[count] = collapse_result(features, labels, weight, bias)
    finally:
        torch.set_num_threads(before)
    reference = results[1]
    for count, result in results.items():
        assert result.metrics.keys() == reference.metrics.keys()
        for key, value in reference.metrics.items():
            same = result.metrics[key] == value or (
                np.isnan(value) and np.isnan(result.metrics[key])
            )
            assert same, (count, key, result.metrics[key], value)
        for key, array in reference.arrays.items():
            np.testing.assert_array_equal(result.arrays[key], array, err_msg=f"{count} {key}")


def test_a_worker_error_reaches_the_caller_and_the_setting_is_restored(two_threads):
    from ncviz.metrics.threads import run_queues

    done = []

    def fail():
        raise ValueError("bad chunk")

    with pytest.raises(ValueError, match="bad chunk"):
        run_queues([[fail], [lambda: done.append(1)], [lambda: done.append(2)]])
    assert torch.get_num_threads() == 2


def test_nan_in_a_chunk_run_by_a_worker_is_one_clear_error(two_threads):
    from ncviz.errors import InputError

    rng = np.random.default_rng(1)
    features = rng.standard_normal((20_000, 256))
    features[17_000, 3] = np.nan  # in the fifth chunk
    with pytest.raises(InputError, match="NaN"):
        collapse_result(features, np.arange(20_000) % 4)
    assert torch.get_num_threads() == 2


def test_workers_run_in_the_callers_grad_and_inference_mode(two_threads):
    """Grad and inference mode are per thread; a worker takes the caller's (the Recorder
    accumulates in inference mode, where its sums can only be updated in place)."""
    from ncviz.metrics.threads import run_queues

    seen = []

    def look():
        seen.append((torch.is_inference_mode_enabled(), torch.is_grad_enabled()))
        threading.Event().wait(0.01)  # let the other worker take a queue

    with torch.inference_mode():
        run_queues([[look], [look], [look]])
    assert seen == [(True, False)] * 3
    seen.clear()
    with torch.no_grad():
        run_queues([[look], [look]])
    assert seen == [(False, False)] * 2


def test_inside_one_thread_large_work_takes_the_callers_threads_back(two_threads):
    """An analysis runs its glue inside single_threaded(); a large forward or pass inside it
    still gets the caller's two threads (workers for a pass), small work stays on one."""
    from ncviz.metrics.threads import caller_threads, full_threads, run_queues

    idents = set()

    def work():
        idents.add(threading.get_ident())
        threading.Event().wait(0.01)  # let the other worker take a queue

    with single_threaded():
        assert caller_threads() == 2 and torch.get_num_threads() == 1
        with threads_for(SMALL_WORK_FLOPS * 10):
            assert torch.get_num_threads() == 2
        with threads_for(SMALL_WORK_FLOPS / 10):
            assert torch.get_num_threads() == 1
        with full_threads():
            assert torch.get_num_threads() == 2
        assert torch.get_num_threads() == 1
        run_queues([[work], [work]])
        assert len(idents) == 2  # two workers, though this thread runs on one
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_numpy_blas_runs_on_one_thread_while_workers_run_side_by_side(two_threads):
    import threadpoolctl

    from ncviz.metrics.threads import run_queues

    def blas_threads_now() -> set[int]:
        info = threadpoolctl.threadpool_info()
        return {p["num_threads"] for p in info if p["user_api"] == "blas"}

    before = blas_threads_now()
    if before == {1}:
        pytest.skip("numpy's BLAS is single-threaded here")
    seen: list[set[int]] = []
    pieces = [[lambda: seen.append(blas_threads_now())] for _ in range(2)]
    run_queues(pieces, flops=1e12, threads=2)
    assert seen == [{1}, {1}]
    assert blas_threads_now() == before  # restored
