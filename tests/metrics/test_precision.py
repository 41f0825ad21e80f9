"""Half-precision inputs are upcast: collapsed features keep non-negative, exact variances."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ncviz.metrics import collapse_result
from ncviz.synthetic import simplex_etf


@pytest.fixture(scope="module")
def collapsed():
    rng = np.random.default_rng(0)
    means = 8.0 * simplex_etf(10, 64)  # large means, tiny spread: the collapsed regime
    labels = np.repeat(np.arange(10), 200)
    features = means[labels] + 0.05 * rng.standard_normal((len(labels), 64))
    return features, labels, means


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_input_gives_the_float64_answer_of_the_same_values(collapsed, dtype):
    features, labels, means = collapsed
    half = torch.from_numpy(features).to(dtype)
    result = collapse_result(half, labels, means)
    exact = collapse_result(half.double().numpy(), labels, means)
    assert (result.arrays["class_variances"] >= 0).all()
    assert result.metrics["nc1"] > 0
    for key, value in exact.metrics.items():
        assert result.metrics[key] == pytest.approx(value, rel=1e-10, abs=1e-13), key


def test_float16_features_match_the_unrounded_data_to_input_precision(collapsed):
    features, labels, means = collapsed
    half = collapse_result(torch.from_numpy(features).half(), labels, means).metrics
    full = collapse_result(features, labels, means).metrics
    # coordinates are O(1): fp16 rounding (ulp ≈ 1e-3) adds ≈ ulp²/12 ≪ σ² = 2.5e-3 of variance
    for key in ("nc1", "nc1_trace_ratio", "cdnv"):
        assert half[key] == pytest.approx(full[key], rel=2e-2), key
    for key in ("nc2_etf_distance", "nc3", "nc2_equinorm_means"):
        assert half[key] == pytest.approx(full[key], abs=1e-3), key
    assert half["nc4"] == full["nc4"] == 0.0
