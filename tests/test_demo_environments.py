"""Coloured digits and the bundled ERM vs NC-aligned environment runs (measured directions)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ncviz.analysis import analyze
from ncviz.demos.environments import ALIGNED_RUN, ERM_RUN, environment_runs, train_environment_run
from ncviz.errors import DataError
from ncviz.load import load_dataset
from ncviz.load.datasets import DIGIT_COLOURS

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
LAYER = "classifier:input"


def _colour_index(images: np.ndarray) -> np.ndarray:
    """The colour each image was painted in: the RGB ratio of its brightest pixel."""
    flat = images.reshape(len(images), 3, -1)
    brightest = flat.sum(axis=1).argmax(axis=1)
    rgb = flat[np.arange(len(flat)), :, brightest]
    rgb = rgb / rgb.max(axis=1, keepdims=True)
    palette = DIGIT_COLOURS / DIGIT_COLOURS.max(axis=1, keepdims=True)
    return np.argmin(((rgb[:, None, :] - palette[None]) ** 2).sum(axis=2), axis=1)


def test_colored_digits_paint_the_label_colour_at_each_environments_rate():
    data = load_dataset("builtin:colored-digits?split=all&envs=0.9,0.6&test=0.0&shape=image")
    assert data.inputs.shape == (1797, 3, 8, 8)
    labels, colours = data.labels.numpy(), _colour_index(data.inputs.numpy())
    rates = {
        g: float(np.mean(colours[data.groups == g] == labels[data.groups == g]))
        for g in ("env1", "env2", "test")
    }
    assert rates["env1"] == pytest.approx(0.9, abs=0.04)
    assert rates["env2"] == pytest.approx(0.6, abs=0.04)
    assert rates["test"] == 0.0
    assert (np.bincount(np.unique(data.groups, return_inverse=True)[1]) == [700, 700, 397]).all()
    train = load_dataset("builtin:colored-digits?split=train")
    assert set(train.groups) == {"env1", "env2"} and train.inputs.shape == (1400, 192)
    with pytest.raises(DataError, match="probabilities"):
        load_dataset("builtin:colored-digits?envs=0.9,high")


def test_a_data_file_with_groups_gives_per_group_rows(tmp_path):
    from ncviz.metrics.groups import group_result

    data = load_dataset("builtin:colored-digits?split=all")
    path = tmp_path / "envs.npz"
    np.savez(path, inputs=data.inputs.numpy(), labels=data.labels.numpy(), groups=data.groups)
    loaded = load_dataset(str(path))
    assert list(loaded.groups[:3]) == list(data.groups[:3])
    subset = load_dataset(f"{path}?per_class=20")  # subsampling keeps each row's group
    assert len(subset.groups) == len(subset) == 200
    result = group_result(loaded.inputs.numpy()[:, :64], loaded.labels.numpy(), loaded.groups)
    assert result.groups == ["env1", "env2", "test"]


@pytest.fixture(scope="module")
def bundled():
    return {name: analyze(CHECKPOINTS / name, layers=[LAYER]) for name in (ERM_RUN, ALIGNED_RUN)}


def _at_end(analysis, group, metric):
    table = analysis.group_table
    rows = table[
        (table["checkpoint"] == analysis.checkpoints[-1])
        & (table["group"] == group)
        & (table["metric"] == metric)
    ]
    assert len(rows) == 1, (group, metric)
    return float(rows["value"].iloc[0])


def test_aligned_run_brings_the_test_environment_closer_and_classifies_it_better(bundled):
    erm, aligned = bundled[ERM_RUN], bundled[ALIGNED_RUN]
    assert erm.groups == aligned.groups == ["env1", "env2", "test"]
    # measured at step 1000: prototype distance of 'test' to the training environments
    # 0.527 (ERM) vs 0.282 (aligned); test-environment accuracy 0.874 vs 0.899
    assert _at_end(aligned, "test", "prototype_distance") < _at_end(
        erm, "test", "prototype_distance"
    )
    assert _at_end(aligned, "test", "accuracy") > _at_end(erm, "test", "accuracy")
    for run in (erm, aligned):  # both fit their training environments
        assert _at_end(run, "env1", "accuracy") == _at_end(run, "env2", "accuracy") == 1.0
    matrix = aligned.group_results[(aligned.checkpoints[-1], LAYER)].prototype_distances
    assert matrix.shape == (3, 3) and np.allclose(matrix, matrix.T)
    tidy = aligned.tidy()
    assert set(tidy["group"].dropna()) == {"env1", "env2", "test"}
    assert tidy["group"].isna().sum() == len(aligned.table)


def test_environment_runs_rebuild_with_a_tiny_budget(tmp_path):
    from dataclasses import replace

    for settings in environment_runs():
        folder = train_environment_run(replace(settings, steps=3, checkpoints=(0, 3)), tmp_path)
        analysis = analyze(folder, layers=[LAYER], cache=False)
        assert analysis.checkpoints == ["step_0000.safetensors", "step_0003.safetensors"]
        assert analysis.groups == ["env1", "env2", "test"]


def test_cli_writes_the_group_column_and_prints_each_group(tmp_path, capsys):
    import pandas as pd

    from ncviz.cli import main

    out = tmp_path / "out"
    folder = CHECKPOINTS / ALIGNED_RUN
    assert main(["analyze", str(folder), "--layers", LAYER, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "per group at classifier:input" in printed and "prototype_distance" in printed
    table = pd.read_csv(out / "metrics.csv")
    assert set(table["group"].dropna()) == {"env1", "env2", "test"}
    assert {"etf_alignment", "prototype_distance"} <= set(table["metric"])


def test_features_files_and_csv_files_carry_groups(tmp_path):
    from ncviz.metrics.groups import group_result

    rng = np.random.default_rng(0)
    labels = np.tile(np.arange(4), 30)
    groups = np.where(np.arange(120) < 70, "north", "south")
    features = rng.standard_normal((120, 6)) + 3 * np.eye(4, 6)[labels]
    path = tmp_path / "feats.npz"
    np.savez(path, **{"features.penultimate": features}, labels=labels, groups=groups)
    analysis = analyze(path)
    expected = group_result(features, labels, groups)
    table = analysis.group_table
    south = table[(table["group"] == "south") & (table["metric"] == "nc1")]["value"].iloc[0]
    assert south == pytest.approx(expected.group_metrics("south")["nc1"], rel=1e-12)
    assert analysis.groups == ["north", "south"] and analysis.layers == ["penultimate"]
    csv = tmp_path / "data.csv"
    frame = {f"x{k}": features[:, k] for k in range(6)} | {"label": labels, "site": groups}
    import pandas as pd

    pd.DataFrame(frame).to_csv(csv, index=False)
    data = load_dataset(f"{csv}?group_column=site")
    assert data.inputs.shape == (120, 6) and list(np.unique(data.groups)) == ["north", "south"]
    with pytest.raises(DataError, match="no group column"):
        load_dataset(f"{csv}?group_column=env")


def test_alignment_to_the_fixed_head_is_measured_against_its_rows(bundled):
    from ncviz.analysis import groups_against_head
    from ncviz.load import build_model, load_weights, read_checkpoint

    aligned = bundled[ALIGNED_RUN]
    last = aligned.checkpoints[-1]
    result = groups_against_head(aligned, last, LAYER)
    assert result.etf_source == "given"
    net = build_model(aligned.model)
    load_weights(net, read_checkpoint(CHECKPOINTS / ALIGNED_RUN / last).state_dict)
    w = net.classifier.weight.detach().double().numpy()  # the fixed simplex ETF (×10)
    means = result.results["test"].arrays["class_means"]

    def unit(m):
        m = m - m.mean(axis=0)
        return m / np.linalg.norm(m)

    assert result.etf_alignment["test"] == pytest.approx(np.linalg.norm(unit(means) - unit(w)))
    assert groups_against_head(aligned, last, "blocks.0") is None  # no classifier reads it


def test_streamed_group_rows_equal_group_result_on_the_layer_features(bundled):
    """A checkpoint analysis streams (x, y, group) batches; its per-group rows equal
    ``group_result`` on the layer's features held in memory (float32 forwards: 1e-6)."""
    from ncviz.analysis import layer_features, origin_of
    from ncviz.demos.environments import ENV_DATA
    from ncviz.metrics.groups import group_result

    erm = bundled[ERM_RUN]
    last = erm.checkpoints[-1]
    features, labels = layer_features(erm, last, LAYER, cache=False)
    groups = load_dataset(f"{ENV_DATA}&split=all").groups
    net, _ = origin_of(erm).trained_model(last)
    weight, bias = net.classifier.weight.detach(), net.classifier.bias.detach()
    expected = group_result(features, labels, groups, weight, bias)
    table = erm.group_table
    for group in expected.groups:
        rows = table[
            (table["checkpoint"] == last) & (table["group"] == group) & (table["layer"] == LAYER)
        ]
        got = dict(zip(rows["metric"], rows["value"]))
        for key, value in expected.group_metrics(group).items():
            assert got[key] == pytest.approx(value, rel=1e-6, abs=1e-9), (group, key)


def test_cli_report_holds_the_group_views(tmp_path):
    from ncviz.cli import main

    out = tmp_path / "out"
    folder = CHECKPOINTS / ERM_RUN
    assert main(["analyze", str(folder), "--layers", LAYER, "--out", str(out), "--report"]) == 0
    text = (out / "report.html").read_text()
    for heading in ("Geometry", "nc1 over training", "Prototypes per group", "Per group"):
        assert f"<h2>{heading}</h2>" in text, heading
