"""The unconstrained-features models reproduce their papers' findings."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from ncviz.metrics import ufm_regression_optimum
from ncviz.theory import (
    DeepUFMSettings,
    RegressionUFMSettings,
    UFMSettings,
    dnc_reference_loss,
    sweep,
    train_deep_ufm,
    train_regression_ufm,
    train_ufm,
)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ufm_cross_entropy_collapses_exactly_from_random_init(seed):
    result = train_ufm(UFMSettings(num_classes=10, dim=20, seed=seed))
    final = result.final()
    assert final["nc1"] < 1e-2 and final["nc2_etf_distance"] < 1e-2 and final["nc3"] < 1e-2
    assert result.metrics[0]["nc2_etf_distance"] > 0.1  # it really started far from collapse
    assert result.loss[-1] < result.loss[0]


def test_ufm_mse_and_adam_run():
    mse = train_ufm(UFMSettings(loss="mse", steps=300, bias=False))
    adam = train_ufm(UFMSettings(optimizer="adam", lr=0.01, steps=300))
    assert mse.final()["nc1"] < mse.metrics[0]["nc1"]
    assert adam.final()["accuracy"] == 1.0


def test_dnc_reference_matches_a_brute_force_search():
    loss, t = dnc_reference_loss(10, 4, [0.004] * 4, 0.004)
    ts = np.linspace(0, 1, 200_001)
    brute = ((1 - ts) ** 2 / 2 + 0.004 * 10 * 5 / 2 * ts ** (2 / 5)).min()
    assert loss == pytest.approx(brute, abs=1e-9) and 0.9 < t < 1


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """30×30 full-batch problems run fastest on one thread (~2 s per seed here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def deep_runs():
    return [train_deep_ufm(DeepUFMSettings(seed=seed)) for seed in range(5)]


def test_deep_ufm_finds_low_rank_solutions_below_the_dnc_loss(deep_runs):
    """Súkeník et al. 2024, Fig. 2 setting: K = 10, L = 4, width 30, λ = 0.004, lr 0.5."""
    low_rank = [
        run
        for run in deep_runs
        if max(run.final_ranks()[:-1]) < 10 and run.loss[-1] < run.dnc_reference
    ]
    assert len(low_rank) >= 3
    for run in deep_runs:
        assert run.final_ranks()[-1] == 10  # the post-ReLU last layer keeps full rank
        assert run.fit[-1] < 0.01 and run.regulariser[-1] > run.fit[-1]


@pytest.mark.parametrize("change", [{"depth": 2}, {"num_classes": 2}])
def test_deep_ufm_controls_reach_full_rank_collapse(change):
    run = train_deep_ufm(dataclasses.replace(DeepUFMSettings(seed=0), **change))
    k = run.settings.num_classes
    assert run.final_ranks() == [k] * run.settings.depth
    assert run.ranks_pre[-1] == [k] * (run.settings.depth - 1)
    # DNC's class means form an orthogonal frame: K uncentred, K − 1 once centred (numpy here)
    assert run.ranks("centred")[-1] == [k - 1] * run.settings.depth
    for means in run.means_post:
        s = np.linalg.svd(means - means.mean(axis=1, keepdims=True), compute_uv=False)
        assert (s > run.settings.tau * s[0]).sum() == k - 1
    assert run.loss[-1] == pytest.approx(run.dnc_reference, rel=2e-3)


def test_deep_ufm_records_dnc1_with_several_samples_per_class():
    run = train_deep_ufm(DeepUFMSettings(num_classes=3, depth=2, width=6, per_class=4, steps=400))
    assert len(run.dnc1[-1]) == 2 and run.dnc1[-1][0] < run.dnc1[0][0]


def test_regression_ufm_converges_to_the_closed_form():
    result = train_regression_ufm(RegressionUFMSettings())
    assert result.relative_error() < 1e-3
    s = result.settings
    np.testing.assert_allclose(
        result.ww_optimum, ufm_regression_optimum(result.target_cov, s.lambda_h, s.lambda_w)
    )
    assert result.metrics[-1]["nrc3"] < 1e-4


def test_sweep_over_depth_is_cached(monkeypatch):
    import ncviz.theory.sweeps as sweeps

    base = DeepUFMSettings(steps=3000, num_classes=4, width=12)
    table = sweep(base, "depth", [2, 5], seeds=[0])
    assert list(table["depth"]) == [2, 5]
    shallow = table[table["depth"] == 2].iloc[0]
    assert shallow["min_rank"] == 4 and shallow["reached_dnc"]

    def no_training(*args, **kwargs):
        raise AssertionError("a cached sweep must not train again")

    monkeypatch.setattr(sweeps, "train_deep_ufm", no_training)
    assert sweep(base, "depth", [2, 5], seeds=[0]).equals(table)


def test_deep_rfm_kernel_agop_equals_autograd_and_collapses_with_depth():
    """The closed-form AGOP of a Laplace-kernel predictor equals autograd's; with the AGOP
    projection NC1 falls with depth (measured on 200 digits: 0.69 → 0.035 over 6 layers) while
    random features alone do not collapse (0.69 → 0.95)."""
    import torch

    from ncviz.theory import DeepRFMSettings, run_deep_rfm
    from ncviz.theory.deep_rfm import kernel_agop, laplace_kernel

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(12, 5, generator=generator, dtype=torch.float64)
    alpha = torch.randn(12, 3, generator=generator, dtype=torch.float64)
    a = torch.randn(5, 5, generator=generator, dtype=torch.float64)
    m = a @ a.T / 5
    total = torch.zeros(5, 5, dtype=torch.float64)
    for j in range(12):
        point = x[j : j + 1].clone().requires_grad_(True)
        others = torch.cat([x[:j], x[j + 1 :]])  # k(x_j, x_j) has no gradient: left out
        f = laplace_kernel(point, others, m, 0.7) @ torch.cat([alpha[:j], alpha[j + 1 :]])
        jac = torch.stack(
            [torch.autograd.grad(f[0, c], point, retain_graph=True)[0][0] for c in range(3)]
        )
        total += jac.T @ jac
    assert torch.allclose(kernel_agop(x, alpha, m, 0.7), total / 12, rtol=1e-10, atol=1e-14)

    result = run_deep_rfm(DeepRFMSettings(depth=6))
    assert result.nc1[-1] < result.nc1[0] / 10
    assert result.nc1_features_only[-1] > result.nc1_features_only[0]
    assert result.nc2[-1] < result.nc2_features_only[-1]
