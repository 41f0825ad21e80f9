"""Sub-clusters (k-means) and NCMC's collapse to each class's centre-mean, against loops."""

from __future__ import annotations

import numpy as np
import pytest

from ncviz.errors import InputError
from ncviz.metrics import collapse_metrics
from ncviz.metrics.multicentre import (
    class_aware_counts,
    multicentre_result,
    ncmc_centres,
    ncmc_result,
)


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
    assert result.metrics["subcluster_nc_ave"] == pytest.approx(result.nc.mean(), rel=1e-12)
    assert result.metrics["subcluster_nc_std"] == pytest.approx(
        np.std(result.nc, ddof=1), rel=1e-12
    )
    assert result.metrics["subcluster_count"] == pytest.approx(2.0)


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
    assert result.metrics["subcluster_alignment"] == pytest.approx(np.mean(cos), rel=1e-9)
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


def _spread_and_collapsed(seed=0):
    """Three classes with 3 fixed centres each: features on the separate centres (three points
    per class), or all on the mean of their class's centres (NCMC, each at its own norm)."""
    rng = np.random.default_rng(seed)
    targets = ncmc_centres(np.eye(3, 12), per_class=3, theta=0.2, seed=seed)
    y = np.repeat(np.arange(3), 30)
    which = np.tile(np.arange(3), 30)
    scale = rng.uniform(1.0, 4.0, size=(90, 1))
    spread = 3.0 * targets[y, which]
    collapsed = scale * targets.mean(axis=1)[y]
    return targets, y, spread + 1e-4 * rng.standard_normal(spread.shape), collapsed


def test_ncmc_tells_the_centre_mean_from_separate_points_where_subclusters_cannot():
    targets, y, spread, collapsed = _spread_and_collapsed()
    at_mean = ncmc_result(collapsed, y, targets)
    apart = ncmc_result(spread, y, targets)
    assert at_mean.metrics["ncmc_nc_ave"] == pytest.approx(0.0, abs=1e-12)
    assert at_mean.metrics["ncmc_alignment"] == pytest.approx(1.0, abs=1e-12)
    # separate points: each feature is a centre, at angle from the centre-mean; computed here
    # from the definition with a loop
    centre_means = targets.mean(axis=1)
    expected = []
    for c in range(3):
        unit_mean = centre_means[c] / np.linalg.norm(centre_means[c])
        rows = spread[y == c] / np.linalg.norm(spread[y == c], axis=1, keepdims=True)
        expected.append(np.mean([np.sum((r - unit_mean) ** 2) for r in rows]))
    assert apart.nc == pytest.approx(expected, rel=1e-9)
    assert apart.metrics["ncmc_nc_ave"] > 0.5  # far from 0: not collapsed to the centre-mean
    assert apart.metrics["ncmc_nc_std"] == pytest.approx(np.std(expected, ddof=1), rel=1e-9)
    # the k-means view calls both collapsed (each class sits on a few points either way)
    for features in (spread, collapsed):
        found = multicentre_result(features, y, max_centres=4)
        assert found.metrics["subcluster_nc_ave"] < 0.05


def test_class_aware_centres_pad_with_nan_and_are_read_back():
    per_class = class_aware_counts([135, 34, 6])
    assert per_class.tolist() == [20, 40, 80]  # ⌈20·√(135/n)⌉, capped at 80
    targets = ncmc_centres(np.eye(3, 90), per_class=per_class, seed=0)
    assert targets.shape == (3, 80, 90)
    for k, f in enumerate(per_class):
        assert np.isfinite(targets[k, :f]).all() and np.isnan(targets[k, f:]).all()
    y = np.repeat(np.arange(3), 5)
    h = np.nanmean(targets, axis=1)[y]
    result = ncmc_result(h, y, targets)
    assert result.centres.tolist() == [20, 40, 80]
    assert result.metrics["ncmc_centres"] == pytest.approx(140 / 3)
    assert result.metrics["ncmc_nc_ave"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(InputError, match="zero"):
        ncmc_result(np.zeros((15, 90)), y, targets)
