"""`ncviz analyze` / `ncviz.analyze` on a tiny run, a checkpoint and a features file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ncviz.analysis import TABLE_COLUMNS, analyze
from ncviz.cli import main
from ncviz.load import build_model, load_dataset, save_safetensors
from ncviz.load.runs import open_run, write_run_json
from ncviz.metrics import collapse_metrics

SPEC = {"name": "mlp", "kwargs": {"in_features": 64, "num_classes": 10, "widths": [24, 16]}}
DATA = "builtin:digits?per_class=40"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """Three checkpoints of a briefly trained MLP, saved at epochs 0, 2 and 10."""
    folder = tmp_path_factory.mktemp("run")
    data = load_dataset(DATA)
    torch.manual_seed(0)
    model = build_model(SPEC).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for epoch in range(11):
        if epoch in (0, 2, 10):
            save_safetensors(
                model.state_dict(), folder / f"epoch_{epoch:03d}.safetensors", epoch=epoch
            )
        for start in range(0, len(data), 64):
            loss = torch.nn.functional.cross_entropy(
                model(data.inputs[start : start + 64]), data.labels[start : start + 64]
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    write_run_json(folder, name="tiny", model=SPEC, data=DATA, task="classification")
    return folder


def test_run_folder_orders_checkpoints_by_epoch(tiny_run):
    run = open_run(tiny_run)
    assert [p.name for p in run.checkpoints] == [
        "epoch_000.safetensors",
        "epoch_002.safetensors",
        "epoch_010.safetensors",
    ]
    assert run.model.name == "mlp" and run.data.source == "builtin:digits"


def test_cli_analyze_writes_the_tidy_table_matching_collapse_metrics(tiny_run, tmp_path, capsys):
    assert main(["analyze", str(tiny_run), "--out", str(tmp_path / "out")]) == 0
    table = pd.read_parquet(tmp_path / "out" / "metrics.parquet")
    assert list(table.columns) == [*TABLE_COLUMNS, "convention"]  # exports name the convention
    assert set(table["convention"]) == {"ncviz"}
    assert pd.read_csv(tmp_path / "out" / "metrics.csv").shape == table.shape
    assert set(table["layer"]) == {"blocks.0", "classifier:input"}
    assert sorted(set(table["epoch"])) == [0, 2, 10] and set(table["split"]) == {"train"}
    assert "nc1" in capsys.readouterr().out

    # the same numbers from a manual forward pass and collapse_metrics
    from ncviz.load import read_checkpoint

    model = build_model(SPEC)
    model.load_state_dict(read_checkpoint(tiny_run / "epoch_010.safetensors").state_dict)
    data = load_dataset(DATA)
    captured = []
    model.classifier.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
    with torch.no_grad():
        model(data.inputs)
    expected = collapse_metrics(
        captured[0], data.labels, model.classifier.weight.detach(), model.classifier.bias.detach()
    )
    last = table[(table["epoch"] == 10) & (table["layer"] == "classifier:input")]
    got = dict(zip(last["metric"], last["value"]))
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_analysis_of_one_checkpoint_with_a_test_split(tiny_run):
    analysis = analyze(
        tiny_run / "epoch_010.safetensors",
        "builtin:digits?split=test",
        model=SPEC,
        layers=["classifier:input"],
    )
    assert set(analysis.table["split"]) == {"test"} and analysis.layers == ["classifier:input"]
    result = analysis.results[("epoch_010.safetensors", "classifier:input")]
    assert result.arrays["class_counts"].sum() == 397


def test_split_column_names_the_data_file(tiny_run, tmp_path):
    data = load_dataset("builtin:digits?split=test")
    np.savez(tmp_path / "held-out.npz", inputs=data.inputs.numpy(), labels=data.labels.numpy())
    analysis = analyze(
        tiny_run / "epoch_010.safetensors",
        str(tmp_path / "held-out.npz"),
        model=SPEC,
        layers=["classifier:input"],
    )
    assert set(analysis.table["split"]) == {"held-out"}


def test_features_file_needs_no_model(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 10)
    penultimate = rng.standard_normal((40, 6)) + 3 * np.eye(4, 6)[labels]
    weight = rng.standard_normal((4, 6))
    np.savez(
        tmp_path / "feats.npz",
        **{
            "features.block1": rng.standard_normal((40, 9)),
            "features.penultimate": penultimate,
            "labels": labels,
            "classifier.weight": weight,
        },
    )
    analysis = analyze(tmp_path / "feats.npz")
    table = analysis.table
    got = table[(table["layer"] == "penultimate") & (table["metric"] == "nc3")]["value"].item()
    assert got == pytest.approx(collapse_metrics(penultimate, labels, weight)["nc3"])
    assert "nc3" not in set(table[table["layer"] == "block1"]["metric"])

    targets = rng.standard_normal((40, 2))
    np.savez(tmp_path / "reg.npz", **{"features.h": penultimate, "targets": targets})
    assert {"nrc1"} <= set(analyze(tmp_path / "reg.npz").table["metric"])


def test_cli_user_errors_exit_2_with_one_line(tiny_run, tmp_path, capsys):
    assert main(["analyze", str(tmp_path / "missing")]) == 2
    assert main(["analyze", str(tiny_run), "--data", "builtin:nothing"]) == 2
    wrong = "mlp:in_features=64,num_classes=10,widths=[8]"
    assert main(["analyze", str(tiny_run), "--model", wrong, "--out", str(tmp_path)]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ncviz:")]
    assert len(lines) == 3
    assert "does not exist" in lines[0] and "unknown builtin dataset" in lines[1]
    assert "does not match the chosen architecture" in lines[2] and "mis-shaped" in lines[2]


def test_cli_layers_lists_shapes_and_defaults(tiny_run, capsys):
    assert main(["layers", str(tiny_run)]) == 0
    out = capsys.readouterr().out
    assert "* classifier:input" in out and "blocks.0.0" in out and "24" in out


def test_token_like_features_with_min_count_equal_the_naive_pair_metrics(tmp_path, capsys):
    """Zipfian labels over 1,200 classes in d = 24 (C > d, many singletons), an LM-head W with a
    row per class: `ncviz analyze --min-count 2` drops the rare classes, reports what it dropped,
    and every pair metric equals the naive reference on the kept classes' samples."""
    from tests.metrics.naive_reference import naive_metrics

    rng = np.random.default_rng(5)
    num_classes, dim = 1200, 24
    probs = 1.0 / np.arange(1, num_classes + 1) ** 1.1
    labels = rng.choice(num_classes, 6000, p=probs / probs.sum())
    centres = rng.standard_normal((num_classes, dim))
    features = centres[labels] + 0.5 * rng.standard_normal((len(labels), dim))
    weight = centres + 0.2 * rng.standard_normal(centres.shape)
    bias = 0.1 * rng.standard_normal(num_classes)
    np.savez(
        tmp_path / "tokens.npz",
        **{
            "features.final": features,
            "labels": labels,
            "classifier.weight": weight,
            "classifier.bias": bias,
        },
    )
    assert (
        main(
            [
                "analyze",
                str(tmp_path / "tokens.npz"),
                "--min-count",
                "2",
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    table = pd.read_parquet(tmp_path / "out" / "metrics.parquet").set_index("metric")["value"]
    counts = np.bincount(labels, minlength=num_classes)
    kept = np.flatnonzero(counts >= 2)
    assert len(kept) > dim + 1 and (counts == 1).sum() > 0
    assert table["classes_kept"] == len(kept)
    assert table["classes_dropped"] == (counts > 0).sum() - len(kept)
    assert table["samples_dropped"] == counts[counts == 1].sum()
    mask = np.isin(labels, kept)
    expected = naive_metrics(features[mask], labels[mask], weight[kept], bias[kept])
    pair_keys = [
        "cdnv",
        "gnc2_log_mean",
        "gnc2_log_var",
        "nc2_equiangle_means",
        "nc2_maxangle_means",
        "nc2_equinorm_means",
        "nc2_etf_distance",
        "nc2_equiangle_weights",
        "nc2_maxangle_weights",
        "nc3",
        "nc3_gram",
        "unc3_mean",
        "unc3_var",
    ]
    for key in pair_keys:
        assert table[key] == pytest.approx(expected[key], rel=1e-9), key
    assert "nc1" not in table  # C − 1 > d


def test_a_mistyped_layer_is_one_line_with_the_fix_and_no_empty_progress_bar(tiny_run, capsys):
    assert main(["analyze", str(tiny_run), "--layers", "blcks.0", "--no-cache"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'blocks.0'?" in err
    assert "batch" not in err  # no bar before the work started
