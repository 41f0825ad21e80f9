"""Small metric work runs on one thread (immune to a busy neighbour); large GEMMs keep theirs."""

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


def test_small_batches_are_accumulated_on_one_thread(two_threads, monkeypatch):
    seen = []
    original = stats.add_upper_gram_

    def spy(accumulator, rows):
        seen.append((rows.shape[0], torch.get_num_threads()))
        original(accumulator, rows)

    monkeypatch.setattr(stats, "add_upper_gram_", spy)
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 50)
    small = rng.standard_normal((200, 16))
    collapse_result(small, labels)
    assert seen and all(threads == 1 for _, threads in seen)
    seen.clear()
    large = rng.standard_normal((20_000, 256)).astype(np.float32)
    collapse_result(large, np.arange(20_000) % 4)
    assert seen and all(threads == 2 for _, threads in seen)
    assert torch.get_num_threads() == 2


def test_metrics_do_not_depend_on_the_thread_count():
    """The same data on 1 thread, 2 threads and torch's default: every metric agrees to 1e-12
    (relative), so a result never depends on how busy the machine was."""
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 50, size=20_000)
    means = 2.0 * rng.standard_normal((50, 256))
    features = (means[labels] + rng.standard_normal((20_000, 256))).astype(np.float32)
    weight = (means + 0.3 * rng.standard_normal(means.shape)).astype(np.float32)
    bias = rng.standard_normal(50).astype(np.float32)
    before = torch.get_num_threads()
    results = {}
    try:
        for count in (1, 2, before):
            torch.set_num_threads(count)
            results[count] = collapse_result(features, labels, weight, bias).metrics
    finally:
        torch.set_num_threads(before)
    reference = results[1]
    for count, metrics in results.items():
        assert set(metrics) == set(reference)
        for key, value in reference.items():
            assert metrics[key] == pytest.approx(value, rel=1e-12, abs=1e-300), (count, key)


def test_the_chooser_follows_the_machine_when_the_load_changes():
    """Idle: two threads are faster and kept. A neighbour starts: the periodic retry of one
    thread finds it faster, and the chooser moves over within a few runs."""
    from ncviz.metrics.threads import ThreadChooser

    chooser = ThreadChooser(explore_every=4)
    cost = {1: 2.0, 2: 1.0}  # idle: two threads twice as fast
    picks = []
    for run in range(40):
        if run == 20:
            cost = {1: 2.0, 2: 6.0}  # loaded: each parallel region waits for a late thread
        threads = chooser.choice(2)
        chooser.record(threads, cost[threads])
        picks.append(threads)
    assert picks[2:20].count(2) > picks[2:20].count(1)
    assert picks[-10:].count(1) > picks[-10:].count(2)


def test_small_work_runs_on_one_thread_and_is_not_timed(two_threads):
    from ncviz.metrics.threads import SMALL_WORK_FLOPS, ThreadChooser

    chooser = ThreadChooser()
    with chooser.run(SMALL_WORK_FLOPS / 10):
        assert torch.get_num_threads() == 1
    assert chooser.choice(2) == 2 and not chooser._cost  # nothing learnt from tiny work
