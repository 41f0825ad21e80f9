"""Nearest-centre and classifier decisions made in bfloat16/float32 equal the float64 decisions.

Every reference here is a direct numpy float64 computation (‖h − μ_c‖² from the difference, and
W h + b), written without ncviz. The near-tie cases are built so that the low-precision scores
cannot tell the two best rows apart: only the re-check in float64 gets them right.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ncviz.metrics.decisions as decisions
from ncviz.metrics import collapse_result
from ncviz.metrics.decisions import AffineDecisions
from ncviz.metrics.stats import add_upper_gram_, symmetric_from_upper


def _nearest_centre(features: np.ndarray, centres: np.ndarray) -> np.ndarray:
    distances = ((features[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    return distances.argmin(axis=1)


def _ncc_and_classifier(centres, weight, bias) -> AffineDecisions:
    c = torch.from_numpy(centres)
    return AffineDecisions(
        [(2 * c, -(c * c).sum(dim=1)), (torch.from_numpy(weight), torch.from_numpy(bias))],
        c.mean(dim=0),
    )


@pytest.fixture(params=["bfloat16 first", "float32 first"])
def cascade(request, monkeypatch):
    """Run every test with the bfloat16 level (whatever this CPU has) and without it."""
    native = request.param == "bfloat16 first"
    monkeypatch.setattr(decisions, "bfloat16_is_native", lambda device: native)
    monkeypatch.setattr(decisions, "_MIN_ROWS_FOR_BFLOAT16", 1)
    return native


def _near_ties(rng, centres, count, relative_gap, offset=0.0):
    """Points on the bisector of two random centres, moved by ±relative_gap of their distance."""
    i = rng.integers(0, len(centres), count)
    j = (i + 1 + rng.integers(0, len(centres) - 1, count)) % len(centres)
    direction = centres[j] - centres[i]
    step = relative_gap * rng.choice([-1.0, 1.0], size=(count, 1))
    return (centres[i] + centres[j]) / 2 + step * direction + offset


@pytest.mark.parametrize("relative_gap", [1e-3, 1e-6, 1e-10])
def test_near_ties_between_centres_get_the_float64_answer(cascade, relative_gap):
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((50, 24))
    weight, bias = rng.standard_normal((50, 24)), rng.standard_normal(50)
    features = _near_ties(rng, centres, 400, relative_gap)
    decider = _ncc_and_classifier(centres, weight, bias)
    ncc, pred = decider.decide(torch.from_numpy(features))
    np.testing.assert_array_equal(ncc.numpy(), _nearest_centre(features, centres))
    np.testing.assert_array_equal(pred.numpy(), (features @ weight.T + bias).argmax(axis=1))
    if relative_gap <= 1e-6:  # below float32 resolution: every real tie was re-checked in float64
        distances = np.sort(((features[:, None] - centres[None]) ** 2).sum(axis=2), axis=1)
        ties = int((distances[:, 1] - distances[:, 0] < 1e-5 * distances[:, 0]).sum())
        assert ties > 300
        assert decider.rows_needing_float64 >= ties


def test_near_ties_of_the_classifier_get_the_float64_answer(cascade):
    rng = np.random.default_rng(1)
    weight, bias = rng.standard_normal((30, 16)), rng.standard_normal(30)
    base = rng.standard_normal((300, 16))
    # move each point onto the boundary between its two best rows, then off it by 1e-11
    logits = base @ weight.T + bias
    top = np.argsort(-logits, axis=1)[:, :2]
    normal = weight[top[:, 0]] - weight[top[:, 1]]
    gap = logits[np.arange(300), top[:, 0]] - logits[np.arange(300), top[:, 1]]
    on_boundary = base - (gap / (normal**2).sum(axis=1))[:, None] * normal
    features = on_boundary + 1e-11 * rng.choice([-1.0, 1.0], size=(300, 1)) * normal
    centres = rng.standard_normal((30, 16))
    _, pred = _ncc_and_classifier(centres, weight, bias).decide(torch.from_numpy(features))
    np.testing.assert_array_equal(pred.numpy(), (features @ weight.T + bias).argmax(axis=1))


def test_exact_ties_go_to_the_first_row_as_in_float64(cascade):
    centres = np.array([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 3.0]])
    features = np.array([[0.9, 0.1], [0.0, 0.0], [0.0, 1.5], [-2.0, 0.0]])
    ncc, _ = _ncc_and_classifier(centres, centres, np.zeros(4)).decide(torch.from_numpy(features))
    # point 1 is equidistant from centres 0, 1, 2; point 2 from 0–3 (1.5² + 1 = 3.25 vs 2.25)
    np.testing.assert_array_equal(ncc.numpy(), _nearest_centre(features, centres))
    assert ncc.tolist()[:2] == [0, 0]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
def test_every_input_dtype_is_decided_on_its_exact_values(cascade, dtype):
    rng = np.random.default_rng(2)
    centres = rng.standard_normal((40, 32))
    features = torch.from_numpy(_near_ties(rng, centres, 300, 1e-3)).to(dtype)
    exact = features.to(torch.float64).numpy()
    weight, bias = rng.standard_normal((40, 32)), rng.standard_normal(40)
    ncc, pred = _ncc_and_classifier(centres, weight, bias).decide(features)
    np.testing.assert_array_equal(ncc.numpy(), _nearest_centre(exact, centres))
    np.testing.assert_array_equal(pred.numpy(), (exact @ weight.T + bias).argmax(axis=1))


def test_a_large_common_offset_does_not_change_the_decisions(cascade):
    """Post-ReLU features sit far from the origin; the bound is taken around the mean centre."""
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((20, 16)) + 1e4
    features = _near_ties(rng, centres - 1e4, 500, 1e-4, offset=1e4)
    decider = _ncc_and_classifier(centres, rng.standard_normal((20, 16)), np.zeros(20))
    ncc, _ = decider.decide(torch.from_numpy(features))
    np.testing.assert_array_equal(ncc.numpy(), _nearest_centre(features, centres))


def test_well_separated_data_is_decided_without_float64(cascade):
    """The cascade does its job: clear decisions never reach the float64 level."""
    rng = np.random.default_rng(4)
    centres = 5 * rng.standard_normal((100, 64))
    labels = rng.integers(0, 100, 2000)
    features = centres[labels] + rng.standard_normal((2000, 64))
    decider = _ncc_and_classifier(centres, centres, np.zeros(100))
    ncc, _ = decider.decide(torch.from_numpy(features).float())
    np.testing.assert_array_equal(ncc.numpy(), labels)
    assert decider.rows_needing_float64 == 0


def test_nc4_and_accuracy_on_near_ties_equal_the_naive_count(cascade):
    rng = np.random.default_rng(5)
    centres = rng.standard_normal((12, 10))
    labels = np.repeat(np.arange(12), 30)
    features = centres[labels] + rng.standard_normal((len(labels), 10))
    features[::6] = _near_ties(rng, centres, 60, 1e-3)  # points between classes
    weight, bias = rng.standard_normal((12, 10)), rng.standard_normal(12)
    result = collapse_result(features.astype(np.float32), labels, weight, bias)
    exact = features.astype(np.float32).astype(np.float64)
    means = np.stack([exact[labels == c].mean(axis=0) for c in range(12)])
    ncc = _nearest_centre(exact, means)
    pred = (exact @ weight.T + bias).argmax(axis=1)
    assert result.metrics["nc4"] == pytest.approx(np.mean(ncc != pred), abs=1e-15)
    assert result.metrics["accuracy"] == pytest.approx(np.mean(pred == labels), abs=1e-15)


def test_upper_gram_blocks_give_the_full_symmetric_product():
    rng = np.random.default_rng(6)
    for dim in (1, 7, 130, 300, 1100):
        rows = torch.from_numpy(rng.standard_normal((9, dim)))
        accumulator = torch.zeros(dim, dim, dtype=torch.float64)
        add_upper_gram_(accumulator, rows)
        add_upper_gram_(accumulator, rows[:4])
        expected = rows.numpy().T @ rows.numpy() + rows[:4].numpy().T @ rows[:4].numpy()
        np.testing.assert_allclose(
            symmetric_from_upper(accumulator).numpy(), expected, rtol=1e-12, atol=1e-13 * dim
        )
