"""Per-group collapse equals a naive per-group computation; cross-group distances and ETF fit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg

from ncviz.errors import InputError
from ncviz.metrics.groups import group_result
from tests.metrics.naive_reference import naive_metrics

CLASSES, DIM = 5, 12


def _held_out():
    """Three groups of unequal size; class 4 is missing from group "b" and class 3 has one
    sample in group "c" (both must leave those groups' metrics)."""
    rng = np.random.default_rng(7)
    means = rng.standard_normal((CLASSES, DIM)) * 3
    sizes = {"a": [30, 25, 20, 18, 15], "b": [12, 9, 8, 7, 0], "c": [40, 5, 6, 1, 22]}
    h, y, g = [], [], []
    for offset, (group, counts) in enumerate(sizes.items()):
        shift = 0.3 * offset * rng.standard_normal(DIM)  # each environment moves its prototypes
        for cls, count in enumerate(counts):
            h.append(means[cls] + shift + rng.standard_normal((count, DIM)))
            y += [cls] * count
            g += [group] * count
    w = rng.standard_normal((CLASSES, DIM))
    b = rng.standard_normal(CLASSES)
    return np.concatenate(h), np.array(y), np.array(g), w, b


def _naive_prototypes(means):
    centred = means - means.mean(axis=0)
    return centred / np.sqrt((centred**2).sum())


def test_per_group_metrics_equal_a_naive_per_group_computation():
    h, y, g, w, b = _held_out()
    result = group_result(h, y, g, w, b)
    assert result.groups == ["a", "b", "c"]
    for group in result.groups:
        mask = g == group
        present = [c for c in range(CLASSES) if (y[mask] == c).sum() >= 2]
        rows = mask & np.isin(y, present)
        expected = naive_metrics(h[rows], y[rows], w[present], b[present])
        got = result.group_metrics(group)
        for key in (
            "nc1",
            "nc1_trace_ratio",
            "cdnv",
            "nc2_etf_distance",
            "nc3",
            "nc2_equiangle_means",
            "unc3_mean",
        ):
            assert got[key] == pytest.approx(expected[key], rel=1e-9, abs=1e-12), (group, key)
        # the model predicts over all C outputs (it may answer a class the group lacks); the
        # nearest class mean is among the group's own classes
        predicted = np.argmax(h[rows] @ w.T + b, axis=1)
        means = np.stack([h[rows & (y == c)].mean(axis=0) for c in present])
        nearest = np.array(present)[
            np.argmin(((h[rows][:, None, :] - means[None]) ** 2).sum(axis=2), axis=1)
        ]
        assert got["accuracy"] == pytest.approx(np.mean(predicted == y[rows]), abs=1e-12)
        assert got["nc4"] == pytest.approx(np.mean(predicted != nearest), abs=1e-12)
    # the missing class and the singleton are reported, not silently mixed in
    assert result.group_metrics("b")["classes_dropped"] == 1
    assert result.group_metrics("c")["classes_dropped"] == 1
    assert result.group_metrics("c")["samples_dropped"] == 1
    assert list(result.results["b"].classes) == [0, 1, 2, 3]


def test_prototype_distance_matches_numpy_over_shared_classes():
    h, y, g, *_ = _held_out()
    result = group_result(h, y, g)

    def means(group, classes):
        return np.stack([h[(g == group) & (y == c)].mean(axis=0) for c in classes])

    shared = [0, 1, 2]  # "b" lacks 4 and "c" lacks 3 (singleton): a–b share 0..3, b–c 0..2
    expected = np.linalg.norm(
        _naive_prototypes(means("b", shared)) - _naive_prototypes(means("c", shared))
    )
    assert result.prototype_distances[1, 2] == pytest.approx(expected, rel=1e-9)
    expected_ab = np.linalg.norm(
        _naive_prototypes(means("a", range(4))) - _naive_prototypes(means("b", range(4)))
    )
    assert result.prototype_distances[0, 1] == pytest.approx(expected_ab, rel=1e-9)
    assert np.allclose(result.prototype_distances, result.prototype_distances.T)
    assert np.allclose(np.diag(result.prototype_distances), 0)
    row = result.prototype_distances[0]
    assert result.group_metrics("a")["prototype_distance"] == pytest.approx(row[1:].mean())


def test_given_etf_alignment_matches_numpy():
    h, y, g, *_ = _held_out()
    rng = np.random.default_rng(1)
    basis = np.linalg.qr(rng.standard_normal((DIM, CLASSES)))[0]
    etf = (np.eye(CLASSES) - 1 / CLASSES) @ basis.T  # C×d, a simplex ETF in R^12
    result = group_result(h, y, g, etf=etf)
    for group, present in (("a", range(5)), ("b", range(4)), ("c", [0, 1, 2, 4])):
        present = list(present)
        means = np.stack([h[(g == group) & (y == c)].mean(axis=0) for c in present])
        expected = np.linalg.norm(_naive_prototypes(means) - _naive_prototypes(etf[present]))
        assert result.etf_alignment[group] == pytest.approx(expected, rel=1e-9), group


def test_best_fit_etf_is_an_etf_and_beats_any_rotation():
    h, y, g, *_ = _held_out()
    result = group_result(h, y, g)
    etf = result.common_etf
    gram = etf @ etf.T
    expected = (np.eye(CLASSES) - 1 / CLASSES) / (CLASSES - 1)
    assert np.allclose(gram, expected, atol=1e-12)
    assert result.etf_source.startswith("best fit")  # only "a" holds every class
    means_a = np.stack([h[(g == "a") & (y == c)].mean(axis=0) for c in range(CLASSES)])
    target = _naive_prototypes(means_a)
    # scipy's orthogonal Procrustes: the rotation R of the ETF that best matches group a
    rotation, _ = scipy.linalg.orthogonal_procrustes(etf, target)
    assert np.linalg.norm(target - etf) <= np.linalg.norm(target - etf @ rotation) + 1e-9
    rng = np.random.default_rng(3)
    for _ in range(20):
        q = np.linalg.qr(rng.standard_normal((DIM, DIM)))[0]
        assert np.linalg.norm(target - etf) <= np.linalg.norm(target - etf @ q) + 1e-12


def test_identical_groups_have_zero_distance_and_collapsed_ones_align():
    rng = np.random.default_rng(0)
    y = np.tile(np.arange(4), 50)
    vertices = (np.eye(4) - 0.25) @ np.linalg.qr(rng.standard_normal((6, 4)))[0].T
    h = vertices[y] * 3.0
    g = np.repeat(["x", "y"], 100)
    result = group_result(h, y, g)
    assert result.prototype_distances[0, 1] == pytest.approx(0.0, abs=1e-12)
    assert result.etf_alignment["x"] == pytest.approx(0.0, abs=1e-9)
    assert result.group_metrics("x")["nc2_etf_distance"] == pytest.approx(0.0, abs=1e-9)


def test_a_group_with_one_class_is_reported_not_fatal():
    rng = np.random.default_rng(0)
    h = rng.standard_normal((40, 3))
    y = np.r_[np.arange(30) % 3, np.zeros(10, int)]
    g = np.r_[["big"] * 30, ["tiny"] * 10]
    result = group_result(h, y, g)
    assert "tiny" not in result.results and "big" in result.results
    assert any("group tiny" in w for w in result.warnings)
    assert math.isnan(result.prototype_distances[0, 1])


def test_bad_groups_are_refused_in_one_line():
    with pytest.raises(InputError, match="one group per sample"):
        group_result(np.zeros((4, 2)), [0, 1, 0, 1], ["a", "b"])


def test_collapse_metrics_with_groups_adds_every_groups_keys():
    from ncviz.metrics import collapse_metrics, collapse_result

    h, y, g, w, b = _held_out()
    metrics = collapse_metrics(h, y, w, b, groups=g)
    expected = group_result(h, y, g, w, b)
    assert metrics["nc1"] == collapse_metrics(h, y, w, b)["nc1"]  # the pooled keys unchanged
    for group in ("a", "b", "c"):
        for key, value in expected.group_metrics(group).items():
            assert metrics[f"{key}/{group}"] == pytest.approx(value, rel=1e-12), (group, key)
    assert collapse_result(h, y, groups=g).groups.groups == ["a", "b", "c"]
