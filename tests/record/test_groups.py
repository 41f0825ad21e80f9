"""Groups through the Recorder: per-group rows of a recorded held-out run equal a naive
per-group computation (1e-9) with unequal groups, a class missing from one group and a class
seen once in another."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ncviz import Recorder
from ncviz.analysis import analyze
from ncviz.errors import DataError, OptionError
from tests.metrics.naive_reference import naive_metrics
from tests.record.conftest import OddNet, train_epoch

LAYER = "tail:input"


def _held_out_groups(labels: np.ndarray, seed: int = 3) -> np.ndarray:
    """Three environments of unequal size; class 9 never in "lab", class 8 once in "field"."""
    rng = np.random.default_rng(seed)
    groups = rng.choice(["clinic", "field", "lab"], size=len(labels), p=[0.5, 0.2, 0.3])
    groups[(labels == 9) & (groups == "lab")] = "clinic"
    eights = np.flatnonzero((labels == 8) & (groups == "field"))
    groups[eights[1:]] = "clinic"
    return groups


def _features(model, x):
    captured = {}
    hook = model.tail.register_forward_hook(lambda m, i, o: captured.__setitem__("h", i[0]))
    with torch.no_grad():
        model(x)
    hook.remove()
    return captured["h"].numpy()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, digits):
    x, y = digits
    torch.manual_seed(0)
    model = OddNet()
    train_epoch(model, x[::2], y[::2], seed=0)  # trained on half, recorded on the other half
    held_x, held_y = x[1::2], y[1::2]
    groups = _held_out_groups(held_y.numpy())
    batches = [
        (held_x[k : k + 37], held_y[k : k + 37], list(groups[k : k + 37]))
        for k in range(0, len(held_y), 37)
    ]
    folder = tmp_path_factory.mktemp("grouped")
    with Recorder(folder, layers=["penult"], classifier="tail", groups=True) as rec:
        rec.capture(model, batches, step=0, split="test")
    return folder, model, held_x, held_y.numpy(), groups


def test_per_group_rows_equal_a_naive_per_group_computation(recorded):
    folder, model, x, y, groups = recorded
    analysis = analyze(folder)
    assert analysis.groups == ["clinic", "field", "lab"]
    h = _features(model, x)
    w, b = model.tail.weight.detach().numpy(), model.tail.bias.detach().numpy()
    table = analysis.group_table
    for group in analysis.groups:
        got = dict(
            zip(
                *[
                    table[(table["group"] == group) & (table["layer"] == LAYER)][c]
                    for c in ("metric", "value")
                ]
            )
        )
        mask = groups == group
        present = [c for c in range(10) if (y[mask] == c).sum() >= 2]
        rows = mask & np.isin(y, present)
        expected = naive_metrics(h[rows], y[rows], w[present], b[present])
        for key in (
            "nc1",
            "nc1_trace_ratio",
            "cdnv",
            "nc2_etf_distance",
            "nc2_equinorm_means",
            "nc3",
            "unc3_mean",
            "gnc2_log_mean",
        ):
            assert got[key] == pytest.approx(expected[key], rel=1e-9, abs=1e-12), (group, key)
        predicted = np.argmax(h[rows] @ w.T + b, axis=1)  # over all ten outputs
        assert got["accuracy"] == pytest.approx(np.mean(predicted == y[rows]), abs=1e-12)
        assert got["classes_dropped"] == 10 - len(present)
    lab = table[(table["group"] == "lab") & (table["metric"] == "classes_dropped")]
    field = table[(table["group"] == "field") & (table["metric"] == "samples_dropped")]
    assert lab["value"].max() == 1 and field["value"].max() == 1  # class 9; the single 8
    # the cross-group geometry is assembled from the groups' class means
    result = analysis.group_results[("step 0", LAYER)]
    means = {
        g: np.stack([h[(groups == g) & (y == c)].mean(axis=0) for c in range(8)])
        for g in ("field", "lab")
    }
    normed = {
        g: (m - m.mean(axis=0)) / np.linalg.norm(m - m.mean(axis=0)) for g, m in means.items()
    }
    expected = np.linalg.norm(normed["field"] - normed["lab"])  # shared classes 0..7
    assert result.prototype_distances[1, 2] == pytest.approx(expected, rel=1e-9)


def test_the_pooled_rows_are_unchanged_by_groups(recorded):
    folder, model, x, y, _ = recorded
    analysis = analyze(folder)
    h = _features(model, x)
    expected = naive_metrics(
        h, y, model.tail.weight.detach().numpy(), model.tail.bias.detach().numpy()
    )
    got = analysis.metrics_at("step 0", LAYER)
    assert got["nc1"] == pytest.approx(expected["nc1"], rel=1e-9)
    assert len(analysis.tidy()) == len(analysis.table) + len(analysis.group_table)


def test_batches_without_groups_and_bad_group_names_are_refused(tmp_path, digits):
    x, y = digits
    model = OddNet()
    rec = Recorder(tmp_path / "a", layers=["penult"], classifier="tail", groups=True)
    with pytest.raises(DataError, match="groups"):
        rec.capture(model, [(x[:20], y[:20])], step=0)
    with pytest.raises(DataError, match="empty or holds"):
        rec.capture(model, [(x[:20], y[:20], ["a/b"] * 20)], step=0)
    with pytest.raises(OptionError, match="classification"):
        Recorder(tmp_path / "b", task="regression", groups=True)


def test_a_group_with_one_class_is_left_out_with_a_warning(tmp_path, digits):
    x, y = digits
    model = OddNet()
    keep = (y < 3).numpy()
    x, y = x[keep][:90], y[keep][:90]
    groups = np.where(np.arange(90) < 80, "big", "tiny")
    y = y.clone()
    y[80:] = 0  # "tiny" holds one class only
    with Recorder(
        tmp_path / "run", layers=["penult"], classifier="tail", groups=True, min_count=2
    ) as rec:  # digits 3–9 are absent
        rec.capture(model, [(x, y, list(groups))], step=0)
    analysis = analyze(tmp_path / "run")
    assert analysis.groups == ["big"]
    assert any("group 'tiny' is left out" in w for w in rec.entries[0].warnings)
