"""Every key agrees with a plain-numpy reference on random imbalanced data."""

from __future__ import annotations

import numpy as np
import pytest

from ncviz.metrics import collapse_result
from tests.metrics.conftest import make_imbalanced
from tests.metrics.naive_reference import naive_arrays, naive_metrics


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("global_mean", ["class", "sample"])
def test_every_key_matches_the_naive_reference(seed, global_mean):
    features, labels, weight, bias = make_imbalanced(seed)
    result = collapse_result(features, labels, weight, bias, global_mean=global_mean)
    expected = naive_metrics(features, labels, weight, bias, global_mean=global_mean)
    assert set(expected) <= set(result.metrics)
    for key, value in expected.items():
        assert result.metrics[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_arrays_match_the_naive_reference(imbalanced):
    features, labels, weight, bias = imbalanced
    result = collapse_result(features, labels, weight, bias)
    expected = naive_arrays(features, labels, weight)
    for key, value in expected.items():
        np.testing.assert_allclose(result.arrays[key], value, rtol=1e-9, atol=1e-12, err_msg=key)
    assert np.allclose(np.diag(result.arrays["cos_means"]), 1.0)


def test_cdnv_distance_exponent_option(imbalanced):
    features, labels, _weight, _bias = imbalanced
    got = collapse_result(features, labels, dist_exp=2.0).metrics["cdnv"]
    assert got == pytest.approx(naive_metrics(features, labels, dist_exp=2.0)["cdnv"], rel=1e-9)


def test_rank_threshold_option():
    rng = np.random.default_rng(0)
    # class means spanning 2 directions strongly and a third weakly (s3/s1 ≈ 0.05)
    basis = np.diag([1.0, 1.0, 0.05, 0.0])
    means = rng.standard_normal((6, 4)) @ basis
    labels = np.repeat(np.arange(6), 3)
    features = means[labels] + 1e-9 * rng.standard_normal((18, 4))
    s = collapse_result(features, labels).arrays["sv_means"]
    for tau in (1e-3, 1e-2, 0.2):
        got = collapse_result(features, labels, tau=tau).metrics["rank_means"]
        assert got == np.sum(s > tau * s[0])
    assert collapse_result(features, labels, tau=1e-2).metrics["rank_means"] == 3
    assert collapse_result(features, labels, tau=0.2).metrics["rank_means"] == 2


def test_minority_classes_default_and_explicit(imbalanced):
    features, labels, weight, bias = imbalanced
    result = collapse_result(features, labels, weight, bias)
    counts = np.bincount(labels)
    np.testing.assert_array_equal(
        result.minority_classes, np.flatnonzero(counts < counts.max() / 2)
    )
    explicit = collapse_result(features, labels, weight, bias, minority_classes=[2, 3])
    wu = weight[[2, 3]] / np.linalg.norm(weight[[2, 3]], axis=1, keepdims=True)
    assert explicit.metrics["minority_cos"] == pytest.approx(float(wu[0] @ wu[1]), rel=1e-12)
    norms = np.linalg.norm(weight, axis=1)
    ratio = norms[[0, 1, 4, 5, 6]].mean() / norms[[2, 3]].mean()
    assert explicit.metrics["norm_ratio_weights"] == pytest.approx(ratio, rel=1e-12)


def test_per_class_table_arrays(imbalanced):
    features, labels, weight, bias = imbalanced
    result = collapse_result(features, labels, weight, bias)
    pred = (features @ weight.T + bias).argmax(axis=1)
    recall = [np.mean(pred[labels == c] == c) for c in range(len(weight))]
    np.testing.assert_allclose(result.arrays["recall"], recall)
    a = result.arrays
    np.testing.assert_allclose(a["variability"], a["class_variances"] / a["mean_norms"] ** 2)
    assert a["alignment"].shape == a["weight_norms"].shape == (len(weight),)


def test_balanced_data_has_no_minority_keys():
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(4), 10)
    features = rng.standard_normal((40, 5)) + np.eye(4, 5)[labels] * 3
    metrics = collapse_result(features, labels, rng.standard_normal((4, 5))).metrics
    assert "minority_cos" not in metrics and "norm_ratio_weights" not in metrics
