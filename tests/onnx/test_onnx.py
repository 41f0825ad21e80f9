"""ONNX graphs as data: a custom model exported here gives the same metrics as torch hooks."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import ncviz
from ncviz.analysis import analyze, layer_features
from ncviz.cli import main
from ncviz.errors import CheckpointError
from ncviz.load import load_dataset, save_safetensors
from ncviz.load.onnx import read_onnx

onnx = pytest.importorskip("onnx", reason="onnx is a dev requirement")
pytest.importorskip("onnxruntime", reason="onnxruntime is a dev requirement")
pytest.importorskip("onnxscript", reason="the dynamo exporter needs onnxscript")

DATA = "builtin:digits?shape=image&per_class=40"


class Scoped(nn.Module):
    """Module names no registry knows: 'stem', 'body.mix', 'head'."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU())
        self.body = nn.ModuleDict({"mix": nn.Linear(6 * 64, 24), "act": nn.Tanh()})
        self.head = nn.Linear(24, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h = self.stem(images).flatten(1)
        return self.head(self.body["act"](self.body["mix"](h)))


def export(model: nn.Module, path) -> None:
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(),
            (torch.randn(2, 1, 8, 8),),
            str(path),
            dynamo=True,
            optimize=False,
            dynamic_shapes=({0: "batch"},),
            verbose=False,
        )


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx")
    torch.manual_seed(0)
    model = Scoped()
    data = load_dataset(DATA)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    snapshots = {}
    for epoch in range(6):
        if epoch in (1, 5):
            snapshots[epoch] = {k: v.clone() for k, v in model.state_dict().items()}
        loss = nn.functional.cross_entropy(model(data.inputs), data.labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    export(model, folder / "model.onnx")
    return folder, model, snapshots, data


def hooked(model, module, inputs):
    kept = []
    handle = module.register_forward_pre_hook(lambda _m, args: kept.append(args[0]))
    with torch.no_grad():
        model.eval()(inputs)
    handle.remove()
    return kept[0].double()


def test_layers_carry_module_names_and_the_head_is_found(exported):
    folder, model, _, _ = exported
    graph = read_onnx(folder / "model.onnx")
    assert {"stem", "stem.0", "body.mix", "body.act", "head:input"} <= set(graph.layers)
    assert graph.classifier == "head" and graph.default_layers() == ["stem", "head:input"]
    np.testing.assert_allclose(graph.weight.numpy(), model.head.weight.detach().numpy())


def test_cli_metrics_equal_torch_hooks(exported, tmp_path):
    folder, model, _, data = exported
    assert (
        main(["analyze", str(folder / "model.onnx"), "--data", DATA, "--out", str(tmp_path)]) == 0
    )
    table = __import__("pandas").read_parquet(tmp_path / "metrics.parquet")
    got = table[table["layer"] == "head:input"].set_index("metric")["value"]
    expected = ncviz.collapse_metrics(
        hooked(model, model.head, data.inputs),
        data.labels,
        model.head.weight.detach(),
        model.head.bias.detach(),
    )
    for key in ("nc1", "nc2_etf_distance", "nc3", "nc4", "cdnv", "accuracy"):
        assert got[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-8), key
    assert list(dict.fromkeys(table["layer"])) == ["stem", "head:input"]


def test_a_run_is_one_graph_and_a_checkpoint_per_epoch(exported, tmp_path):
    folder, model, snapshots, data = exported
    run = tmp_path / "run"
    run.mkdir()
    for part in folder.glob("model.onnx*"):  # the graph and its external data file, if any
        (run / part.name).write_bytes(part.read_bytes())
    for epoch, state in snapshots.items():
        save_safetensors(state, run / f"epoch_{epoch}.safetensors", epoch=epoch)
    analysis = analyze(run, DATA, layers=["body.mix", "head:input"])
    assert analysis.checkpoints == ["epoch_1.safetensors", "epoch_5.safetensors"]
    assert analysis.epochs() == [1, 5]
    model.load_state_dict(snapshots[1])
    expected = ncviz.collapse_metrics(
        hooked(model, model.head, data.inputs),
        data.labels,
        snapshots[1]["head.weight"],
        snapshots[1]["head.bias"],
    )
    got = analysis.metrics_at("epoch_1.safetensors", "head:input")
    assert got["nc1"] == pytest.approx(expected["nc1"], rel=1e-5)
    features, labels = layer_features(analysis, "epoch_5.safetensors", "body.mix")
    assert features.shape == (len(data), 24) and len(labels) == len(data)


def test_external_data_outside_the_folder_is_refused(exported, tmp_path):
    folder, _, _, _ = exported
    model = onnx.load(str(folder / "model.onnx"))
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    del tensor.external_data[:]
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../../etc/passwd"
    onnx.save(model, str(tmp_path / "evil.onnx"))
    with pytest.raises(CheckpointError, match="outside its own folder"):
        read_onnx(tmp_path / "evil.onnx")


def test_custom_operator_domains_are_refused(exported, tmp_path):
    folder, _, _, _ = exported
    model = onnx.load(str(folder / "model.onnx"))
    model.graph.node[0].domain = "evil.ops"
    onnx.save(model, str(tmp_path / "custom.onnx"))
    with pytest.raises(CheckpointError, match=r"domain 'evil\.ops'"):
        read_onnx(tmp_path / "custom.onnx")


def test_graph_without_module_names_is_explained(tmp_path):
    from onnx import TensorProto, helper

    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
    )
    onnx.save(helper.make_model(graph), str(tmp_path / "plain.onnx"))
    with pytest.raises(CheckpointError, match="dynamo=True"):
        read_onnx(tmp_path / "plain.onnx")


def test_the_dashboard_analyses_an_uploaded_graph(exported):
    from tests.app.test_pages import _app, _assert_clean, _visit

    folder, _, _, _ = exported
    files = [
        (p.name, p.read_bytes(), "application/octet-stream")
        for p in sorted(folder.glob("model.onnx*"))
    ]
    at = _app().run()
    at.segmented_control(key="source_mode").set_value("Upload").run()
    at.file_uploader(key="upload_checkpoints").set_value(files).run()
    assert not [w for w in at.selectbox if w.key == "arch"]  # a graph needs no architecture
    at.selectbox(key="builtin_data").set_value("builtin:digits?shape=image").run()
    at.button(key="list_layers").click().run()
    _assert_clean(at, "onnx layer listing")
    picker = at.multiselect(key="layers_chosen")
    assert "body.mix  (24)" in picker.options and picker.value == ["stem", "head:input"]
    at.button(key="analyse_upload").click().run()
    _assert_clean(at, "onnx upload")
    assert any("1 checkpoint(s) × 2 layer(s)" in s.value for s in at.success)
    for page in ("overview", "geometry", "embedding"):
        _visit(at, page)
        _assert_clean(at, f"onnx/{page}")
    assert at.selectbox(key="w_layer").options == ["stem", "head:input"]


class WideBomb(nn.Module):
    """A named layer whose output on two samples needs 2 × 24 × 5·10⁷ floats (8.9 GiB): a Cos
    over a broadcast, as a hostile user of the shared server would upload."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(64, 24)
        self.head = nn.Linear(24, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        wide = self.stem(x.flatten(1)).unsqueeze(-1).expand(-1, -1, 50_000_000)
        return self.head(torch.cos(wide).sum(-1))


def test_listing_the_layers_of_a_graph_that_needs_gigabytes_fails_alone(tmp_path, monkeypatch):
    """Listing layers runs two samples through the graph: in a budgeted worker job, so the
    server only shows one line (in the server process onnxruntime would take the 8.9 GiB)."""
    from tests.app.test_pages import _app, _one_line_error

    monkeypatch.setenv("NCVIZ_WORKER_MEMORY_GB", "1")
    export(WideBomb(), tmp_path / "bomb.onnx")
    at = _app().run()
    at.segmented_control(key="source_mode").set_value("Upload").run()
    files = [
        (p.name, p.read_bytes(), "application/octet-stream")
        for p in sorted(tmp_path.glob("bomb.onnx*"))  # the graph and its external data
    ]
    at.file_uploader(key="upload_checkpoints").set_value(files).run()
    at.selectbox(key="builtin_data").set_value("builtin:digits?shape=image").run()
    at.button(key="list_layers").click().run()
    message = _one_line_error(at)
    assert "bomb.onnx needs a 8.9 GiB tensor for 2 sample(s)" in message, message
    assert not [w for w in at.multiselect if w.key == "layers_chosen"]
