"""Pair metrics are reduced in tiles; C > d (language models) and min_count behave as specified."""

from __future__ import annotations

import numpy as np
import pytest

import ncviz.metrics.decisions as decisions
import ncviz.metrics.geometry as geometry
import ncviz.metrics.stats as stats
from ncviz.metrics import chance_baselines, collapse_result
from tests.metrics.conftest import make_imbalanced
from tests.metrics.naive_reference import naive_metrics


def test_tiny_tiles_give_the_untiled_values(monkeypatch, imbalanced):
    features, labels, weight, bias = imbalanced
    expected = collapse_result(features, labels, weight, bias).metrics
    monkeypatch.setattr(geometry, "_TILE_ENTRIES", 10)  # one row (of 7 classes) per tile
    monkeypatch.setattr(stats, "_CHUNK_ENTRIES", 30)  # 2 samples per float64 chunk (d = 12)
    monkeypatch.setattr(decisions, "_SCORE_BLOCK", 20)  # 1 sample per decision block
    got = collapse_result(features, labels, weight, bias).metrics
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-10, abs=1e-13), key


def test_more_classes_than_dimensions_omits_nc1_and_reports_the_etf_floor():
    rng = np.random.default_rng(0)
    num_classes, dim = 40, 8
    labels = np.repeat(np.arange(num_classes), 3)
    means = rng.standard_normal((num_classes, dim))
    features = means[labels] + 0.1 * rng.standard_normal((len(labels), dim))
    weight = rng.standard_normal((num_classes, dim))
    result = collapse_result(features, labels, weight)
    assert "nc1" not in result.metrics
    floor = np.sqrt(2 - 2 * np.sqrt(dim / (num_classes - 1)))
    assert result.metrics["nc2_etf_distance_floor"] == pytest.approx(floor)
    assert result.metrics["nc2_etf_distance"] >= floor
    expected = naive_metrics(features, labels, weight)
    for key in ("cdnv", "gnc2_log_mean", "gnc2_log_var", "nc2_etf_distance", "nc3_gram"):
        assert result.metrics[key] == pytest.approx(expected[key], rel=1e-9), key


def test_vocabulary_scale_pair_metrics_without_a_c_by_c_matrix(monkeypatch):
    """3,000 classes with tiles of 2**14 entries: every tile is 5×3000, and values match the
    direct C×C computation done here in numpy."""
    monkeypatch.setattr(geometry, "_TILE_ENTRIES", 2**14)
    rng = np.random.default_rng(1)
    num_classes, dim = 3000, 16
    labels = np.repeat(np.arange(num_classes), 2)
    features = rng.standard_normal((len(labels), dim))
    result = collapse_result(features, labels, max_matrix_classes=100)
    assert "cos_means" not in result.arrays
    mu = np.stack([features[labels == c].mean(axis=0) for c in range(num_classes)])
    m = mu - mu.mean(axis=0)
    unit = m / np.linalg.norm(m, axis=1, keepdims=True)
    cos = unit @ unit.T
    upper = np.triu_indices(num_classes, 1)
    logs = -0.5 * np.log(2 - 2 * cos[upper])
    assert result.metrics["gnc2_log_mean"] == pytest.approx(logs.mean(), rel=1e-10)
    assert result.metrics["gnc2_log_var"] == pytest.approx(logs.var(ddof=1), rel=1e-8)
    off = cos[~np.eye(num_classes, dtype=bool)]
    assert result.metrics["nc2_equiangle_means"] == pytest.approx(off.std(ddof=1), rel=1e-9)


def test_chance_baselines_are_deterministic_and_near_one_over_sqrt_d():
    a = chance_baselines(10, 512)
    assert a == chance_baselines(10, 512)
    assert a != chance_baselines(10, 512, seed=1)
    # cosines of independent Gaussian vectors in R^512 have std ≈ 1/√512 ≈ 0.044
    assert 0.03 < a["nc2_equiangle_weights"] < 0.06
    assert 0.03 < a["nc2_equiangle_means"] < 0.06
    assert a["nc3"] > 1.0  # a random W is far from the means
    assert set(a) >= {"nc2_etf_distance", "nc3_gram", "unc3_mean", "gnc2_log_var"}


def test_running_moments_are_exact_in_the_collapsed_regime():
    import torch

    from ncviz.metrics.moments import RunningMoments

    values = -1 / 9 + 1e-9 * np.random.default_rng(2).standard_normal(10_000)
    moments = RunningMoments()
    for chunk in np.array_split(values, 37):
        moments.add(torch.from_numpy(chunk))
    assert moments.mean == pytest.approx(values.mean(), rel=1e-14)
    assert moments.std() == pytest.approx(values.std(ddof=1), rel=1e-6)
    assert moments.repeated(2).count == 20_000


def test_make_imbalanced_is_really_imbalanced():
    _, labels, _, _ = make_imbalanced()
    counts = np.bincount(labels)
    assert counts.max() / counts.min() > 2


def test_frequency_buckets_equal_a_direct_computation_on_each_bucket():
    """Zipfian labels over 300 classes, buckets cut at ranks 10 and 100; every bucket's pair
    metrics, UNC3 and NC4/accuracy recomputed here with numpy from the samples themselves."""
    from ncviz.metrics.buckets import frequency_buckets

    rng = np.random.default_rng(7)
    num_classes, dim = 300, 24
    probs = 1.0 / np.arange(1, num_classes + 1)
    labels = np.concatenate(
        [np.repeat(np.arange(num_classes), 2), rng.choice(num_classes, 3000, p=probs / probs.sum())]
    )
    centres = rng.standard_normal((num_classes, dim))
    features = centres[labels] + 0.7 * rng.standard_normal((len(labels), dim))
    weight = centres + 0.3 * rng.standard_normal(centres.shape)
    bias = 0.1 * rng.standard_normal(num_classes)
    result = collapse_result(features, labels, weight, bias)
    rows = frequency_buckets(result, edges=[10, 100])
    assert [r["bucket"] for r in rows] == ["top 10", "10–100", "100+"]
    counts = np.bincount(labels)
    order = np.argsort(-counts, kind="stable")
    mu = np.stack([features[labels == c].mean(axis=0) for c in range(num_classes)])
    var = np.array(
        [((features[labels == c] - mu[c]) ** 2).sum(axis=1).mean() for c in range(num_classes)]
    )
    m = mu - mu.mean(axis=0)
    ncc = ((features[:, None] - mu[None]) ** 2).sum(axis=2).argmin(axis=1)
    pred = (features @ weight.T + bias).argmax(axis=1)
    for row, members in zip(rows, (order[:10], order[10:100], order[100:])):
        pairs = [(i, j) for a, i in enumerate(members) for j in members[a + 1 :]]
        cdnv = np.mean([(var[i] + var[j]) / (2 * ((mu[i] - mu[j]) ** 2).sum()) for i, j in pairs])
        unit = m / np.linalg.norm(m, axis=1, keepdims=True)
        logs = [-np.log(np.linalg.norm(unit[i] - unit[j])) for i, j in pairs]
        cos = [
            (weight[c] @ m[c]) / np.linalg.norm(weight[c]) / np.linalg.norm(m[c]) for c in members
        ]
        in_bucket = np.isin(labels, members)
        assert row["classes"] == len(members) and row["samples"] == in_bucket.sum()
        assert row["cdnv"] == pytest.approx(cdnv, rel=1e-9)
        assert row["gnc2_log_mean"] == pytest.approx(np.mean(logs), rel=1e-9)
        assert row["gnc2_log_var"] == pytest.approx(np.var(logs, ddof=1), rel=1e-8)
        assert row["unc3_mean"] == pytest.approx(np.mean(cos), rel=1e-9)
        assert row["nc4"] == pytest.approx(np.mean(ncc[in_bucket] != pred[in_bucket]), abs=1e-12)
        assert row["accuracy"] == pytest.approx(
            np.mean(pred[in_bucket] == labels[in_bucket]), abs=1e-12
        )
