"""Checkpoint layouts as real training code writes them; torchvision that cannot be imported."""

from __future__ import annotations

import argparse
import sys

import pytest
import torch

from ncviz.convert import convert_checkpoint
from ncviz.errors import CheckpointError, OptionError
from ncviz.load import build_model, load_weights, read_checkpoint
from ncviz.load.architectures import available_architectures
from ncviz.load.checkpoints import number_from_name

SPEC = {"name": "mlp", "kwargs": {"in_features": 8, "num_classes": 3, "widths": [5]}}


@pytest.mark.parametrize(
    ("name", "number"),
    [
        ("epoch_12.pt", 12),
        ("model_ep12.pth", 12),
        ("step-300.safetensors", 300),
        ("epoch=3-step=45.ckpt", 3),
        ("checkpoint-7.pth.tar", 7),
        ("resnet18.pt", None),
        ("vit_tiny_patch16_224.pt", None),
        ("split3.pt", None),
        ("last.ckpt", None),
    ],
)
def test_epochs_come_only_from_explicit_tokens(name, number):
    assert number_from_name(name) == number


def test_reference_script_checkpoint_with_argparse_namespace(tmp_path):
    """torchvision's and timm's training scripts save args beside the weights (.pth.tar)."""
    model = build_model(SPEC)
    args = argparse.Namespace(lr=0.1, model="mlp", epochs=90)
    path = tmp_path / "checkpoint-3.pth.tar"
    torch.save({"model": model.state_dict(), "optimizer": {}, "args": args, "epoch": 3}, path)
    checkpoint = read_checkpoint(path)
    assert checkpoint.epoch == 3
    load_weights(build_model(SPEC), checkpoint.state_dict)


def test_lightning_module_holding_its_network_as_self_net(tmp_path):
    model = build_model(SPEC)
    state = {f"net.{k}": v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "epoch": 4, "global_step": 40}, tmp_path / "last.ckpt")
    checkpoint = read_checkpoint(tmp_path / "last.ckpt")
    assert checkpoint.epoch == 4 and checkpoint.step == 40
    load_weights(build_model(SPEC), checkpoint.state_dict)


def test_a_model_whose_own_child_is_called_net_keeps_it(tmp_path):
    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = build_model(SPEC)

    torch.save(Wrapper().state_dict(), tmp_path / "w.pt")
    load_weights(Wrapper(), read_checkpoint(tmp_path / "w.pt").state_dict)


class Settings:
    """A class of the training code, pickled beside the weights."""

    lr = 0.1


def test_other_pickled_classes_stay_refused(tmp_path):
    torch.save({"model": build_model(SPEC).state_dict(), "cfg": Settings()}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="needs arbitrary unpickling"):
        read_checkpoint(tmp_path / "x.pt")


class _BrokenTorchvision:
    """Import hook: torchvision that fails as PyPI's CUDA build does beside a CPU torch."""

    def find_spec(self, name, path=None, target=None):
        if name == "torchvision" or name.startswith("torchvision."):
            raise RuntimeError("operator torchvision::nms does not exist")
        return None


def test_unusable_torchvision_is_one_line_and_left_out(monkeypatch):
    for name in [n for n in sys.modules if n.startswith("torchvision")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_BrokenTorchvision(), *sys.meta_path])
    assert not any(n.startswith("torchvision:") for n in available_architectures())
    with pytest.raises(
        OptionError, match="torchvision unusable: operator torchvision::nms"
    ) as info:
        build_model({"name": "resnet18", "kwargs": {}})
    assert "\n" not in str(info.value)


def test_convert_reports_code_it_cannot_import(tmp_path, monkeypatch):
    """A whole model pickled by the lab's own code, converted where that code is absent."""
    (tmp_path / "labcode_models.py").write_text(
        "import torch\nclass TheirModel(torch.nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n"
        "        self.fc = torch.nn.Linear(2, 2)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import labcode_models

    torch.save(labcode_models.TheirModel(), tmp_path / "whole.pt")
    monkeypatch.delitem(sys.modules, "labcode_models")
    (tmp_path / "labcode_models.py").unlink()
    with pytest.raises(CheckpointError, match="not importable here") as info:
        convert_checkpoint(tmp_path / "whole.pt", trust=True)
    assert "\n" not in str(info.value)


def test_torch_export_archives_are_refused_unopened(tmp_path):
    """A crafted .pt2 may run code when torch loads it; ncviz never hands it to torch."""
    marker = tmp_path / "ran"
    archive = tmp_path / "model.pt2"
    import zipfile

    with zipfile.ZipFile(archive, "w") as out:  # any content: it is refused by its kind
        out.writestr("model/data/sample_inputs/x.pt", f"open({str(marker)!r}, 'w')".encode())
    with pytest.raises(CheckpointError, match=r"torch\.export archive") as info:
        read_checkpoint(archive)
    assert "ONNX" in str(info.value) and not marker.exists()
    from ncviz.analysis import analyze

    with pytest.raises(CheckpointError, match=r"torch\.export archive"):
        analyze(archive, "builtin:digits", model=SPEC, cache=False)


def test_architectures_from_installed_packages(tmp_path, monkeypatch):
    """The example plugin package, made visible as an installed distribution (its metadata on
    sys.path, as pip would leave it), adds 'labnet' to the registry through its entry point."""
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "ncviz-lab-models"
    info = tmp_path / "ncviz_lab_models-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: ncviz-lab-models\nVersion: 0.1.0\n"
    )
    (info / "entry_points.txt").write_text("[ncviz.architectures]\nlabnet = lab_models:LabNet\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(example))
    assert "labnet" in available_architectures()
    model = build_model({"name": "labnet", "kwargs": {"width": 16}})
    assert model(torch.zeros(2, 64)).shape == (2, 10)
    with pytest.raises(OptionError, match="million parameters"):
        build_model({"name": "labnet", "kwargs": {"width": 10**8}})


def test_timm_specs_explain_a_missing_or_unusable_timm(monkeypatch):
    """timm imports torchvision, whose PyPI build does not run beside the pinned CPU torch; so
    CI cannot build real timm models. Without timm, or with a broken one, the spec is one line."""
    monkeypatch.setitem(sys.modules, "timm", None)  # as if absent
    with pytest.raises(OptionError, match=r"pip install 'ncviz\[timm\]'"):
        build_model({"name": "timm:resnet18", "kwargs": {"num_classes": 10}})


def test_a_trusted_torch_export_archive_runs_with_hooks(tmp_path):
    """The operator's own .pt2, with the CLI's --trust: unflattened, module names kept, the
    same metrics as hooks on the original model."""
    import numpy as np

    from ncviz.cli import main
    from ncviz.metrics import collapse_metrics

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    batch = torch.export.Dim("batch")
    program = torch.export.export(model, (torch.randn(2, 64),), dynamic_shapes=({0: batch},))
    torch.export.save(program, tmp_path / "model.pt2")
    out = tmp_path / "out"
    data = "builtin:digits?per_class=30"
    assert (
        main(["analyze", str(tmp_path / "model.pt2"), "--data", data, "--trust", "--out", str(out)])
        == 0
    )
    import pandas as pd

    table = pd.read_parquet(out / "metrics.parquet")
    got = table[table["layer"] == "2:input"].set_index("metric")["value"]
    digits = __import__("ncviz").load.load_dataset(data)
    with torch.no_grad():
        features = model[1](model[0](digits.inputs))
    expected = collapse_metrics(features, digits.labels, model[2].weight, model[2].bias)
    assert got["nc1"] == pytest.approx(expected["nc1"], rel=1e-6)
    assert got["accuracy"] == pytest.approx(expected["accuracy"])
    assert np.isfinite(got["nc3"])
