"""Crafted runs and files are refused at the source boundary with one named line: every field a
reader relies on is checked (types, shapes that agree, finite numbers, whole counts, known
tasks), never an "unexpected IndexError" from deep inside, and never a silently wrong number."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

import ncviz
from ncviz.analysis import analyze, layer_features
from ncviz.errors import NcvizError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """A small genuine recorded run: two layers (one the classifier's input), two splits."""
    folder = tmp_path_factory.mktemp("recorded") / "run"
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    x, y = torch.randn(60, 8), torch.arange(60) % 3
    recorder = ncviz.Recorder(folder, layers=["0", "2:input"], classifier="2")
    recorder.capture(net, [(x, y)], step=0)
    recorder.capture(net, [(x, y)], step=1, split="test")
    return folder


@pytest.fixture(scope="module")
def recorded_narrow(tmp_path_factory) -> Path:
    """Layers of width 4 for 3 classes: the entries keep the whole 4×4 scatter (the compact
    projection would be no smaller), as every entry did before the compact format."""
    folder = tmp_path_factory.mktemp("recorded") / "narrow"
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 3))
    x, y = torch.randn(60, 8), torch.arange(60) % 3
    ncviz.Recorder(folder, layers=["0"], classifier="2").capture(net, [(x, y)], step=0)
    return folder


def _copy(recorded: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "crafted"
    shutil.copytree(recorded, folder)
    return folder


def _refused(source: Path, expected: str) -> str:
    with pytest.raises(NcvizError) as info:
        analyze(source, cache=False)
    message = str(info.value)
    assert "\n" not in message and "unexpected" not in message
    assert expected in message, message
    return message


RUN_FIELDS = {
    "task": ("banana", "task must be one of"),
    "layers": ("0", "'layers' must be a list"),
    "classes": ({"a": 1}, "'classes' must be a list"),
    "entries": ({"a": 1}, "'entries' must be a list"),
    "log": ([1, 2], "'log' must be a dict"),
    "options": ({"min_count": "x"}, "min_count must be a whole number"),
    "name": ([1], "'name' must be a str"),
}


@pytest.mark.parametrize("key", sorted(RUN_FIELDS))
def test_a_recorded_run_json_with_a_wrong_field_is_refused(recorded, tmp_path, key):
    folder = _copy(recorded, tmp_path)
    raw = json.loads((folder / "run.json").read_text())
    value, expected = RUN_FIELDS[key]
    raw[key] = value
    (folder / "run.json").write_text(json.dumps(raw))
    _refused(folder, expected)


@pytest.mark.parametrize("step", [1e400, 10**30, -1, 2.5, "3"])
def test_an_entry_step_that_is_no_whole_number_in_range_is_refused(recorded, tmp_path, step):
    folder = _copy(recorded, tmp_path)
    text = (folder / "run.json").read_text()
    raw = json.loads(text)
    raw["entries"][0]["step"] = step
    (folder / "run.json").write_text(json.dumps(raw).replace("Infinity", "1e400"))
    _refused(folder, "malformed entry")


def _craft_entry(folder: Path, edit) -> None:
    for path in folder.glob("*.safetensors"):
        with safe_open(str(path), "pt") as handle:
            metadata = handle.metadata()
        tensors = load_file(str(path))
        edit(tensors)
        save_file(tensors, str(path), metadata=metadata)


def _each(suffix: str, change):
    def edit(tensors: dict) -> None:
        for key in [k for k in tensors if k.endswith(suffix)]:
            tensors[key] = change(tensors[key]).contiguous()

    return edit


ENTRY_EDITS = {
    "nan counts": (_each("/counts", lambda v: v.double() * float("nan")), "NaN or infinite"),
    "negative counts": (_each("/counts", lambda v: -v), "whole numbers ≥ 0"),
    "infinite sums": (_each("/sums", lambda v: v * float("inf")), "NaN or infinite"),
    "narrow sums": (_each("/sums", lambda v: v[:, :2]), "does not match"),
    "small projection": (_each("/scatter_projected", lambda v: v[:1, :1]), "does not match"),
    "flat basis": (_each("/scatter_basis", lambda v: v.flatten()), "1 dimensions, expected 2"),
    "nan spectrum": (_each("/feature_spectrum", lambda v: v * float("nan")), "NaN or infinite"),
    "no spectrum": (lambda t: [t.pop(k) for k in list(t) if k.endswith("_spectrum")], "lacks"),
    "2-D counts": (_each("/counts", lambda v: v[:, None]), "2 dimensions, expected 1"),
    "narrow weight": (_each("/weight", lambda v: v[:, :4]), "does not match"),
    "class rows past W": (_each("/class_rows", lambda v: v + 100), "points past"),
    "short kept": (_each("/kept", lambda v: v[:1]), "does not match"),
    "no basis": (lambda t: [t.pop(k) for k in list(t) if k.endswith("/scatter_basis")], "lacks"),
    "nan distances": (_each("/sq_dist", lambda v: v * float("nan")), "NaN or infinite"),
    "short sample scale": (_each("/sample_scale", lambda v: v[:1]), "shapes do not fit"),
    "nan sample": (_each("/sample_coords", lambda v: v * float("nan")), "NaN or infinite"),
}
# the whole d×d scatter of older (or narrow) entries
WHOLE_SCATTER_EDITS = {
    "small scatter": (_each("/scatter", lambda v: v[:3, :3]), "does not match"),
    "flat scatter": (_each("/scatter", lambda v: v.flatten()), "1 dimensions, expected 2"),
    "no scatter": (lambda t: [t.pop(k) for k in list(t) if k.endswith("/scatter")], "lacks"),
}


@pytest.mark.parametrize("name", sorted(ENTRY_EDITS))
def test_a_crafted_entry_is_refused_naming_the_field(recorded, tmp_path, name):
    folder = _copy(recorded, tmp_path)
    edit, expected = ENTRY_EDITS[name]
    _craft_entry(folder, edit)
    message = _refused(folder, expected)
    assert "step-" in message and "layer" in message  # names where


@pytest.mark.parametrize("name", sorted(WHOLE_SCATTER_EDITS))
def test_a_crafted_entry_with_the_whole_scatter_is_refused(recorded_narrow, tmp_path, name):
    folder = _copy(recorded_narrow, tmp_path)
    assert any(k.endswith("/scatter") for k in load_file(str(next(folder.glob("*.safet*")))))
    edit, expected = WHOLE_SCATTER_EDITS[name]
    _craft_entry(folder, edit)
    assert "step-" in _refused(folder, expected)


def test_run_classes_that_disagree_with_the_entries_are_refused(recorded, tmp_path):
    folder = _copy(recorded, tmp_path)
    raw = json.loads((folder / "run.json").read_text())
    raw["classes"] = ["only one"]
    (folder / "run.json").write_text(json.dumps(raw))
    _refused(folder, "does not match the other fields (C = 1)")


def test_sample_labels_outside_the_classes_are_refused_by_the_embedding(recorded, tmp_path):
    folder = _copy(recorded, tmp_path)
    _craft_entry(folder, _each("sample_labels", lambda v: v + 100))
    analysis = analyze(folder, cache=False)  # the sums are intact
    with pytest.raises(NcvizError, match="sample labels lie outside"):
        layer_features(analysis, analysis.checkpoints[0], "0")


def _checkpoint_run(tmp_path: Path, fields: dict) -> Path:
    folder = tmp_path / "run"
    folder.mkdir()
    checkpoint = ROOT / "checkpoints" / "digits-mlp" / "epoch_0600.safetensors"
    shutil.copy(checkpoint, folder / checkpoint.name)
    (folder / "run.json").write_text(json.dumps(fields))
    return folder


MLP = {
    "name": "mlp",
    "kwargs": {"in_features": 64, "num_classes": 10, "widths": [128, 128, 128], "batchnorm": True},
}
RUN_JSON = {
    "a list": ([1, 2], "must hold a JSON object"),
    "model a list": ({"model": [1], "data": "builtin:digits"}, "'model' must be a str or dict"),
    "kwargs a string": (
        {"model": {"name": "mlp", "kwargs": "x"}, "data": "builtin:digits"},
        '"kwargs" must be an object',
    ),
    "data a number": ({"model": MLP, "data": 5}, "'data' must be a str or dict"),
    "missing data file": ({"model": MLP, "data": "nowhere.npz"}, "does not exist"),
    "metric options a list": (
        {"model": MLP, "data": "builtin:digits", "metric_options": [1]},
        "'metric_options' must be a dict",
    ),
    "tau a string": (
        {"model": MLP, "data": "builtin:digits", "metric_options": {"tau": "x"}},
        "tau must be a number",
    ),
    "log a list": ({"model": MLP, "data": "builtin:digits", "log": [1]}, "'log' must be a dict"),
}


@pytest.mark.parametrize("name", sorted(RUN_JSON))
def test_a_crafted_checkpoint_run_json_is_refused(tmp_path, name):
    fields, expected = RUN_JSON[name]
    _refused(_checkpoint_run(tmp_path, fields), expected)


def test_a_run_finds_its_own_data_file_beside_its_checkpoints(tmp_path, monkeypatch):
    from ncviz.load import load_dataset

    data = load_dataset("builtin:digits?split=test")
    folder = _checkpoint_run(tmp_path, {"model": MLP, "data": "digits-test.npz"})
    np.savez(folder / "digits-test.npz", inputs=data.inputs.numpy(), labels=data.labels.numpy())
    monkeypatch.chdir(ROOT)  # the data path is relative to the run, not to where ncviz runs
    analysis = analyze(folder, cache=False)
    assert analysis.metrics_at("epoch_0600.safetensors", "classifier:input")["accuracy"] > 0.9


FEATURES = {
    "1-D weight": ({"classifier.weight": np.ones(4)}, "classifier.weight must be a matrix"),
    "2-D bias": (
        {"classifier.weight": np.ones((3, 4)), "classifier.bias": np.ones((3, 1))},
        "classifier.bias must be a vector",
    ),
    "finite but huge": ({"features.fc": "huge"}, "too large"),
}


@pytest.mark.parametrize("name", sorted(FEATURES))
def test_a_crafted_features_file_is_refused(tmp_path, name):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    arrays = {"features.fc": rng.standard_normal((60, 4)) + labels[:, None], "labels": labels}
    extra, expected = FEATURES[name]
    if extra.get("features.fc") == "huge":
        extra = {"features.fc": arrays["features.fc"] * 1e200}  # each finite, squares overflow
    path = tmp_path / "crafted.npz"
    np.savez(path, **{**arrays, **extra})
    _refused(path, expected)


def test_the_report_is_written_when_metrics_are_infinite_or_nan(tmp_path):
    """Every class with the same mean: nc1 huge, cdnv and gnc2 inf/NaN; the report still
    renders (the values are shown as they are)."""
    from ncviz.cli import main

    rng = np.random.default_rng(0)
    base = rng.standard_normal((20, 4))
    path = tmp_path / "same-means.npz"
    np.savez(
        path,
        **{
            "features.fc": np.concatenate([base] * 3),
            "labels": np.repeat(np.arange(3), 20),
            "classifier.weight": rng.standard_normal((3, 4)),
            "classifier.bias": np.zeros(3),
        },
    )
    assert main(["analyze", str(path), "--out", str(tmp_path / "out"), "--report"]) == 0
    table = __import__("pandas").read_csv(tmp_path / "out" / "metrics.csv")
    values = dict(zip(table["metric"], table["value"]))
    assert np.isinf(values["cdnv"]) and np.isnan(values["gnc2_log_var"])
    report = (tmp_path / "out" / "report.html").read_text()
    assert "cdnv" in report
    assert "Source: same-means.npz" in report and str(tmp_path) not in report  # no folders
