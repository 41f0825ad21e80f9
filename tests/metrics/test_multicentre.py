"""Multi-centre collapse (NCMC): per-class collapse against loops, k by silhouette, centres."""

from __future__ import annotations

import numpy as np
import pytest

from ncviz.errors import InputError
from ncviz.metrics import collapse_metrics
from ncviz.metrics.multicentre import multicentre_result, ncmc_centres


def _subclusters(seed=0):
    """Class 0: three far-apart sub-clusters; class 1: one; class 2: two; unequal sizes."""
    rng = np.random.default_rng(seed)
    centres = {
        0: rng.standard_normal((3, 6)) * 8,
        1: rng.standard_normal((1, 6)) * 8,
        2: rng.standard_normal((2, 6)) * 8,
    }
    h, y, truth = [], [], []
    for cls, blocks in centres.items():
        for j, centre in enumerate(blocks):
            n = 30 + 10 * j + 5 * cls
            h.append(centre + 0.3 * rng.standard_normal((n, 6)))
            y += [cls] * n
            truth += [j] * n
    return np.concatenate(h), np.array(y), np.array(truth)


def test_kmeans_finds_the_planted_number_of_centres_and_nc_matches_loops():
    h, y, truth = _subclusters()
    result = multicentre_result(h, y, max_centres=5)
    assert result.centres.tolist() == [3, 1, 2]
    means = np.stack([h[y == c].mean(axis=0) for c in range(3)])
    between = np.mean([np.sum((m - means.mean(axis=0)) ** 2) for m in means])
    for c in range(3):
        total = 0.0
        rows = h[y == c]
        parts = truth[y == c]
        for row, part in zip(rows, parts):  # the planted sub-clusters are what k-means finds
            total += np.sum((row - rows[parts == part].mean(axis=0)) ** 2)
        assert result.nc[c] == pytest.approx(total / len(rows) / between, rel=1e-9)
    assert result.metrics["mc_nc_ave"] == pytest.approx(result.nc.mean(), rel=1e-12)
    assert result.metrics["mc_nc_std"] == pytest.approx(np.std(result.nc, ddof=1), rel=1e-12)
    assert result.metrics["mc_centres"] == pytest.approx(2.0)


def test_one_centre_per_class_gives_the_trace_ratio():
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(4), [50, 30, 20, 10])
    h = rng.standard_normal((4, 8))[y] * 3 + rng.standard_normal((110, 8))
    result = multicentre_result(h, y, max_centres=1)
    assert result.centres.tolist() == [1, 1, 1, 1]
    weighted = float((result.nc * result.counts).sum() / result.counts.sum())
    assert weighted == pytest.approx(collapse_metrics(h, y)["nc1_trace_ratio"], rel=1e-9)


def test_given_centres_assign_by_cosine_and_report_alignment():
    rng = np.random.default_rng(2)
    targets = ncmc_centres(np.eye(3, 16), per_class=4, theta=0.2, seed=0)
    norms = np.linalg.norm(targets, axis=2)
    assert np.allclose(norms, 1.0)
    y = np.repeat(np.arange(3), 40)
    which = np.tile(np.arange(4), 30)
    h = 5.0 * targets[y, which] + 0.01 * rng.standard_normal((120, 16))
    result = multicentre_result(h, y, centres=targets)
    assert result.centres.tolist() == [4, 4, 4]
    cos = [h[i] @ targets[y[i], which[i]] / np.linalg.norm(h[i]) for i in range(120)]
    assert result.metrics["mc_alignment"] == pytest.approx(np.mean(cos), rel=1e-9)
    means = np.stack([h[y == c].mean(axis=0) for c in range(3)])
    between = np.mean(np.sum((means - means.mean(axis=0)) ** 2, axis=1))
    expected = []
    for c in range(3):
        residual = [
            np.sum((h[i] - h[(y == c) & (which == which[i])].mean(axis=0)) ** 2)
            for i in np.flatnonzero(y == c)
        ]
        expected.append(np.mean(residual) / between)
    assert result.nc == pytest.approx(expected, rel=1e-9)


def test_bad_centres_and_rare_classes_are_refused():
    h, y, _ = _subclusters()
    with pytest.raises(InputError, match="C×f×d"):
        multicentre_result(h, y, centres=np.zeros((2, 3, 6)))
    with pytest.raises(InputError, match="no centres given"):
        multicentre_result(h, y, centres={0: np.ones((1, 6))})
    with pytest.raises(InputError, match="fewer than 2 samples"):
        multicentre_result(h[:31], np.r_[y[:30], 1])
