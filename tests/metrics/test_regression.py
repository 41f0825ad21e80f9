"""Neural regression collapse (NRC1–3) on closed-form and naive-reference cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ncviz.metrics import regression_metrics, regression_result, ufm_regression_optimum


def _correlated_targets(n_samples=400, seed=0):
    rng = np.random.default_rng(seed)
    mixing = np.array([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.3, -0.2, 0.5]])
    return rng.standard_normal((n_samples, 3)) @ mixing.T


def _sqrtm_psd(matrix):
    vals, vecs = np.linalg.eigh(matrix)
    return vecs @ np.diag(np.sqrt(np.clip(vals, 0, None))) @ vecs.T


def test_ufm_closed_form_head_has_nrc3_zero_at_gamma_lambda_h_lambda_w():
    lambda_h, lambda_w, dim = 1e-3, 1e-2, 16
    targets = _correlated_targets()
    centred = targets - targets.mean(axis=0)
    target_cov = centred.T @ centred / len(targets)
    ww = math.sqrt(lambda_h / lambda_w) * (
        _sqrtm_psd(target_cov) - math.sqrt(lambda_h * lambda_w) * np.eye(3)
    )
    np.testing.assert_allclose(ufm_regression_optimum(target_cov, lambda_h, lambda_w), ww)
    rotation, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((dim, 3)))
    weight = _sqrtm_psd(ww) @ rotation.T  # W Wᵀ = ww, W ∈ R^{3×16}
    features = targets @ weight + 0.01 * np.random.default_rng(2).standard_normal((400, dim))
    result = regression_result(features, targets, weight)
    assert result.metrics["nrc3"] < 1e-12
    assert result.metrics["nrc3_gamma"] == pytest.approx(lambda_h * lambda_w, rel=1e-4)
    np.testing.assert_allclose(result.arrays["ufm_ww"], ww, rtol=1e-6, atol=1e-12)
    assert result.arrays["nrc3_curve"].min() >= result.metrics["nrc3"] - 1e-15


def test_features_in_the_target_subspace_have_nrc1_and_nrc2_zero():
    rng = np.random.default_rng(3)
    targets = _correlated_targets(seed=3)
    basis = rng.standard_normal((3, 20))
    features = targets @ basis + 5.0  # an affine image of the targets: rank 3 after centring
    weight = rng.standard_normal((3, 3)) @ basis  # rows span the same subspace
    m = regression_metrics(features, targets, weight)
    assert m["nrc1"] < 1e-12 and m["nrc2"] < 1e-12


def _naive_nrc(features, targets, weight, center=True):
    h = features - features.mean(axis=0) if center else features.copy()
    h = h / np.linalg.norm(h, axis=1, keepdims=True)
    n = targets.shape[1]
    hc = h - h.mean(axis=0)
    _, vecs = np.linalg.eigh(hc.T @ hc / len(h))
    top = vecs[:, ::-1][:, :n]
    p_n = top @ top.T
    p_w = weight.T @ np.linalg.pinv(weight @ weight.T) @ weight
    nrc1 = np.mean([np.sum((x - p_n @ x) ** 2) for x in h])
    nrc2 = np.mean([np.sum((x - p_w @ x) ** 2) for x in h])
    return nrc1, nrc2


@pytest.mark.parametrize("center", [True, False])
def test_nrc1_nrc2_match_a_naive_reference(center):
    rng = np.random.default_rng(4)
    targets = _correlated_targets(seed=4)
    features = np.maximum(
        targets @ rng.standard_normal((3, 30)) + rng.standard_normal((400, 30)), 0
    )
    weight = rng.standard_normal((3, 30))
    nrc1, nrc2 = _naive_nrc(features, targets, weight, center)
    m = regression_metrics(features, targets, weight, center=center)
    assert m["nrc1"] == pytest.approx(nrc1, rel=1e-9)
    assert m["nrc2"] == pytest.approx(nrc2, rel=1e-9)


def test_nrc3_matches_a_brute_force_search_over_gamma():
    rng = np.random.default_rng(5)
    targets = _correlated_targets(seed=5)
    weight = rng.standard_normal((3, 10))
    result = regression_result(rng.standard_normal((400, 10)), targets, weight)
    centred = targets - targets.mean(axis=0)
    cov = centred.T @ centred / len(targets)
    root = _sqrtm_psd(cov)
    ww = weight @ weight.T
    ww /= np.linalg.norm(ww)
    lam_min = np.linalg.eigvalsh(cov).min()
    best = min(
        np.sum((ww - (a := root - math.sqrt(g) * np.eye(3)) / np.linalg.norm(a)) ** 2)
        for g in np.linspace(0, lam_min, 20001)
    )
    assert result.metrics["nrc3"] == pytest.approx(best, rel=1e-6, abs=1e-12)
    assert 0 <= result.metrics["nrc3_gamma"] <= lam_min


def test_explained_variance_ratios_sum_to_at_most_one_and_are_sorted():
    rng = np.random.default_rng(6)
    features = rng.standard_normal((200, 8)) * np.arange(1, 9)
    evr = regression_result(features, _correlated_targets(200)).arrays["evr_features"]
    assert np.all(np.diff(evr) <= 1e-15) and evr.sum() == pytest.approx(1.0)
