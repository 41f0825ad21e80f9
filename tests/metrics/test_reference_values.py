"""The reference values of METRICS.md, on constructions whose empirical values are exact."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ncviz.metrics import collapse_metrics, collapse_result
from ncviz.synthetic import simplex_etf

C, D = 10, 512


@pytest.fixture(scope="module")
def exact_etf():
    means = simplex_etf(C, D)
    labels = np.repeat(np.arange(C), 4)
    return means[labels], labels, means


def test_exact_etf_has_every_collapse_metric_at_zero(exact_etf):
    features, labels, means = exact_etf
    result = collapse_result(features, labels, weight=means)
    m = result.metrics
    zero_keys = [
        "nc1",
        "nc1_trace_ratio",
        "cdnv",
        "nc2_equinorm_means",
        "nc2_equinorm_weights",
        "nc2_equiangle_means",
        "nc2_maxangle_means",
        "nc2_equiangle_weights",
        "nc2_maxangle_weights",
        "nc2_etf_distance",
        "nc3",
        "nc3_gram",
        "unc3_var",
        "nc4",
    ]
    for key in zero_keys:
        assert abs(m[key]) < 1e-12, (key, m[key])
    assert m["gnc2_log_mean"] == pytest.approx(-0.5 * math.log(2 * C / (C - 1)), abs=1e-12)
    assert m["gnc2_log_mean"] == pytest.approx(-0.399254, abs=1e-6)
    assert m["unc3_mean"] == pytest.approx(1.0, abs=1e-12)
    assert m["accuracy"] == 1.0
    assert m["rank_means"] == C - 1
    assert m["nc1_rank"] == C - 1
    assert m["effective_rank_means"] == pytest.approx(C - 1, abs=1e-9)
    np.testing.assert_allclose(result.arrays["sv_means"][: C - 1], math.sqrt(C / (C - 1)))
    assert result.arrays["sv_means"][C - 1] < 1e-12


def _etf_plus_isotropic_noise(sigma2: float, seed: int = 1):
    """ETF means of norm 1; each class gets deviations ±σ√d·q_k (q_k orthonormal) so that the
    empirical within-class covariance is exactly σ²I_d and every class mean is exact."""
    means = simplex_etf(C, D, seed)
    rotation, _ = np.linalg.qr(np.random.default_rng(seed + 1).standard_normal((D, D)))
    deviations = math.sqrt(sigma2 * D) * np.concatenate([rotation, -rotation])  # 2d × d
    features = np.concatenate([mean + deviations for mean in means])
    labels = np.repeat(np.arange(C), 2 * D)
    return features, labels, means


def test_etf_plus_isotropic_noise_matches_population_formulas():
    sigma2 = 0.01
    features, labels, _ = _etf_plus_isotropic_noise(sigma2)
    m = collapse_metrics(features, labels)
    assert m["nc1"] == pytest.approx(sigma2 * (C - 1) ** 2 / C, rel=1e-9)
    assert m["nc1"] == pytest.approx(0.081, rel=1e-9)
    assert m["nc1_trace_ratio"] == pytest.approx(D * sigma2, rel=1e-9)
    assert m["nc1_trace_ratio"] == pytest.approx(5.12, rel=1e-9)
    assert m["cdnv"] == pytest.approx(D * sigma2 * (C - 1) / (2 * C), rel=1e-9)
    assert m["cdnv"] == pytest.approx(2.304, rel=1e-9)


def test_full_rank_within_class_scatter_is_the_pinv_trap():
    """With full-rank Σ_W and rank-(C−1) Σ_B, a pseudo-inverse that keeps Σ_B's rounding-level
    null eigenvalues (~1e-17) divides Σ_W by them and explodes; ncviz keeps at most C−1
    eigenpairs and gets the analytic 0.081."""
    features, labels, _ = _etf_plus_isotropic_noise(0.01, seed=3)
    mu = np.stack([features[labels == c].mean(axis=0) for c in range(C)])
    centred = mu - mu.mean(axis=0)
    sb = centred.T @ centred / C
    sw = np.cov(features.T, bias=True) - np.cov(mu.T, bias=True)
    naive = np.trace(sw @ np.linalg.pinv(sb, rcond=1e-20)) / C
    assert abs(naive - 0.081) > 1e6  # the trap is really present in this data
    assert collapse_metrics(features, labels)["nc1"] == pytest.approx(0.081, rel=1e-9)


def test_gaussian_noise_agrees_with_population_values_up_to_sampling():
    rng = np.random.default_rng(5)
    sigma2, per_class, dim = 0.01, 4000, 64
    means = simplex_etf(C, dim, seed=5)
    labels = np.repeat(np.arange(C), per_class)
    features = means[labels] + math.sqrt(sigma2) * rng.standard_normal((len(labels), dim))
    m = collapse_metrics(features, labels)
    assert m["nc1"] == pytest.approx(sigma2 * (C - 1) ** 2 / C, rel=0.05)
    assert m["nc1_trace_ratio"] == pytest.approx(dim * sigma2, rel=0.02)
    assert m["cdnv"] == pytest.approx(dim * sigma2 * (C - 1) / (2 * C), rel=0.02)
