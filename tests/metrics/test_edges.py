"""Exact values at the edges: close and identical class means, zero rows, constant data."""

from __future__ import annotations

import math

import numpy as np
import pytest

import ncviz
from ncviz.errors import InputError


def two_close_classes(separation: float, per_class: int = 40, dim: int = 6):
    """Three classes whose means are known exactly: rows are mean ± a fixed offset (so each class
    mean is its centre to the last bit), classes 0 and 1 ``separation`` apart."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, dim))
    direction = rng.normal(size=dim)
    centres[1] = centres[0] + separation * direction / np.linalg.norm(direction)
    offsets = 0.01 * rng.normal(size=(per_class // 2, dim))
    offsets = np.concatenate([offsets, -offsets])
    features = np.concatenate([c + offsets for c in centres])
    labels = np.repeat(np.arange(3), per_class)
    return features, labels


def direct_cdnv(features, labels):
    """(σ_i² + σ_j²) / (2‖μ_i − μ_j‖²) averaged over pairs, from direct differences."""
    classes = np.unique(labels)
    means = [features[labels == c].mean(axis=0) for c in classes]
    var = [((features[labels == c] - m) ** 2).sum(axis=1).mean() for c, m in zip(classes, means)]
    values = []
    for i in range(len(classes)):
        for j in range(i + 1, len(classes)):
            values.append((var[i] + var[j]) / (2 * ((means[i] - means[j]) ** 2).sum()))
    return float(np.mean(values))


@pytest.mark.parametrize("separation", [1e-4, 1e-6, 1e-7, 1e-8])
def test_cdnv_stays_exact_as_two_means_approach(separation):
    features, labels = two_close_classes(separation)
    got = ncviz.collapse_metrics(features, labels)["cdnv"]
    assert got == pytest.approx(direct_cdnv(features, labels), rel=1e-6)


def test_gnc2_stays_exact_for_nearly_parallel_means():
    features, labels = two_close_classes(1e-7)
    means = np.stack([features[labels == c].mean(axis=0) for c in range(3)])
    units = means - means.mean(axis=0)
    units /= np.linalg.norm(units, axis=1, keepdims=True)
    logs = [-np.log(np.linalg.norm(units[i] - units[j])) for i in range(3) for j in range(i + 1, 3)]
    got = ncviz.collapse_metrics(features, labels)["gnc2_log_mean"]
    assert got == pytest.approx(np.mean(logs), rel=1e-6)


def test_identical_means_give_inf_cdnv_with_a_warning():
    features, labels = two_close_classes(0.0)
    result = ncviz.collapse_result(features, labels)
    assert result.metrics["cdnv"] == math.inf
    assert any("identical means" in w for w in result.warnings)


def test_features_without_class_information_are_one_line_errors():
    labels = np.repeat(np.arange(4), 5)
    with pytest.raises(InputError, match="class means are identical"):
        ncviz.collapse_metrics(np.ones((20, 4)), labels)


def test_a_zero_classifier_row_gives_documented_nan():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(4), 10)
    features = 3 * np.eye(4)[labels] + rng.normal(size=(40, 4))
    weight = rng.normal(size=(4, 4))
    weight[2] = 0
    result = ncviz.collapse_result(features, labels, weight)
    assert math.isnan(result.metrics["nc2_equiangle_weights"])
    assert any("classifier row(s) are zero (class index 2" in w for w in result.warnings)
    assert math.isfinite(result.metrics["nc1"]) and math.isfinite(result.metrics["nc3"])


def test_regression_with_constant_targets_or_zero_head():
    rng = np.random.default_rng(2)
    features = rng.normal(size=(50, 4))
    constant = ncviz.regression_result(features, np.ones((50, 2)), rng.normal(size=(2, 4)))
    assert math.isnan(constant.metrics["nrc3"]) and "constant" in constant.warnings[0]
    zero = ncviz.regression_result(features, rng.normal(size=(50, 2)), np.zeros((2, 4)))
    assert math.isnan(zero.metrics["nrc3"]) and "zero" in zero.warnings[0]
    assert zero.metrics["nrc2"] == pytest.approx(1.0)  # nothing to project on
