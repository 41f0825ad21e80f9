"""Checkpoint layouts that real code writes load correctly; unsafe files are refused."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from ncviz.errors import CheckpointError
from ncviz.load import build_model, load_weights, read_checkpoint
from ncviz.load.checkpoints import number_from_name

SPEC = {"name": "mlp", "kwargs": {"in_features": 6, "num_classes": 3, "widths": [5, 4]}}


@pytest.fixture
def trained():
    torch.manual_seed(0)
    model = build_model(SPEC)
    for p in model.parameters():
        p.data.normal_()
    return model


def _same_outputs(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    x = torch.randn(8, 6, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return torch.equal(a.eval()(x), b.eval()(x))


def _roundtrip(path: Path, original: torch.nn.Module):
    checkpoint = read_checkpoint(path)
    fresh = build_model(SPEC)
    load_weights(fresh, checkpoint.state_dict)
    assert _same_outputs(fresh, original)
    return checkpoint


def test_plain_state_dict(tmp_path, trained):
    torch.save(trained.state_dict(), tmp_path / "model.pt")
    _roundtrip(tmp_path / "model.pt", trained)


def test_ddp_prefixed_state_dict(tmp_path, trained):
    wrapped = torch.nn.DataParallel(trained)  # the same `module.` prefix as DDP
    assert next(iter(wrapped.state_dict())).startswith("module.")
    torch.save(wrapped.state_dict(), tmp_path / "ddp_epoch_7.pth")
    assert _roundtrip(tmp_path / "ddp_epoch_7.pth", trained).epoch == 7


def test_torch_compile_state_dict(tmp_path, trained):
    compiled = torch.compile(trained)
    assert next(iter(compiled.state_dict())).startswith("_orig_mod.")
    torch.save(compiled.state_dict(), tmp_path / "compiled.pt")
    _roundtrip(tmp_path / "compiled.pt", trained)


def test_lightning_checkpoint(tmp_path, trained):
    optimizer = torch.optim.SGD(trained.parameters(), lr=0.1, momentum=0.9)
    trained(torch.randn(4, 6)).sum().backward()
    optimizer.step()
    lightning = {
        "epoch": 12,
        "global_step": 480,
        "pytorch-lightning_version": "2.4.0",
        "state_dict": {f"model.{k}": v for k, v in trained.state_dict().items()},
        "optimizer_states": [optimizer.state_dict()],
        "lr_schedulers": [],
        "hyper_parameters": {"lr": 0.1, "widths": [5, 4]},
    }
    torch.save(lightning, tmp_path / "last.ckpt")
    checkpoint = _roundtrip(tmp_path / "last.ckpt", trained)
    assert (checkpoint.epoch, checkpoint.step) == (12, 480)


def test_model_epoch_wrapper(tmp_path, trained):
    torch.save({"model": trained.state_dict(), "epoch": 30}, tmp_path / "ckpt.pt")
    assert _roundtrip(tmp_path / "ckpt.pt", trained).epoch == 30


def test_safetensors_with_metadata(tmp_path, trained):
    save_file(trained.state_dict(), str(tmp_path / "w.safetensors"), metadata={"epoch": "5"})
    checkpoint = _roundtrip(tmp_path / "w.safetensors", trained)
    assert checkpoint.epoch == 5 and len(checkpoint.sha256) == 64


@pytest.mark.parametrize(
    ("name", "number"),
    [("epoch_010.pt", 10), ("ckpt-250.safetensors", 250), ("model_ep3.pth", 3), ("last.pt", None)],
)
def test_epoch_from_file_name(name, number):
    assert number_from_name(name) == number


class _Hostile:
    """Unpickling this object runs code: it writes a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_hostile_pickle_is_refused_and_never_runs(tmp_path, writer):
    marker = tmp_path / "marker.txt"
    path = tmp_path / "evil.pt"
    payload = {"state_dict": {"w": torch.zeros(2)}, "hook": _Hostile(marker)}
    if writer == "torch":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    assert not marker.exists()
    assert "\n" not in str(info.value)
    if writer == "torch":
        assert "ncviz convert --trust" in str(info.value)


def test_whole_pickled_model_is_refused_with_the_conversion_command(tmp_path, trained):
    torch.save(trained, tmp_path / "whole.pt")
    with pytest.raises(CheckpointError, match=r"ncviz convert --trust FILE"):
        read_checkpoint(tmp_path / "whole.pt")


def test_torchscript_and_torch_package_are_refused(tmp_path, trained):
    torch.jit.save(torch.jit.script(trained), tmp_path / "scripted.pt")
    with pytest.raises(CheckpointError, match="TorchScript"):
        read_checkpoint(tmp_path / "scripted.pt")
    from torch.package import PackageExporter

    with PackageExporter(tmp_path / "packaged.pt") as exporter:
        exporter.extern("torch.**")
        exporter.intern("**", allow_empty=True)
        exporter.save_pickle("model", "model.pkl", {"w": torch.zeros(1)})
    with pytest.raises(CheckpointError, match=r"torch\.package"):
        read_checkpoint(tmp_path / "packaged.pt")


def test_truncated_random_and_empty_files_give_one_line_errors(tmp_path, trained):
    torch.save(trained.state_dict(), tmp_path / "full.pt")
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "random.pt").write_bytes(os.urandom(4096))
    (tmp_path / "random.safetensors").write_bytes(os.urandom(4096))
    (tmp_path / "empty.pt").write_bytes(b"")
    names = ["truncated.pt", "random.pt", "random.safetensors", "empty.pt"]
    rng = np.random.default_rng(0)  # junk makes the unpickler fail in many different ways
    for seed in range(200):
        (tmp_path / f"junk{seed}.pt").write_bytes(rng.bytes(int(rng.integers(1, 5000))))
        names.append(f"junk{seed}.pt")
    for name in names:
        with pytest.raises(CheckpointError) as info:
            read_checkpoint(tmp_path / name)
        message = str(info.value)
        assert name in message and "\n" not in message and len(message) < 300
        assert "arbitrary unpickling" not in message  # junk is not mistaken for a pickled model


def test_wrong_architecture_lists_missing_unexpected_and_misshaped_keys(tmp_path, trained):
    torch.save(trained.state_dict(), tmp_path / "m.pt")
    other = build_model(
        {"name": "mlp", "kwargs": {"in_features": 6, "num_classes": 3, "widths": [5]}}
    )
    state = read_checkpoint(tmp_path / "m.pt").state_dict
    with pytest.raises(CheckpointError) as info:
        load_weights(other, state, source="m.pt")
    message = str(info.value)
    assert "unexpected 2: blocks.1.0.bias, blocks.1.0.weight" in message
    assert "classifier.weight (3, 4)≠(3, 5)" in message
    del state["blocks.0.0.bias"]
    with pytest.raises(CheckpointError, match=r"missing 1: blocks\.0\.0\.bias"):
        load_weights(build_model(SPEC), state)


def test_convert_needs_trust_and_then_writes_loadable_safetensors(tmp_path, trained):
    from ncviz.cli import main

    torch.save(trained, tmp_path / "whole.pt")
    assert main(["convert", str(tmp_path / "whole.pt")]) == 2
    assert main(["convert", "--trust", str(tmp_path / "whole.pt")]) == 0
    _roundtrip(tmp_path / "whole.safetensors", trained)
    torch.jit.save(torch.jit.script(trained), tmp_path / "scripted.pt")
    assert (
        main(
            [
                "convert",
                "--trust",
                str(tmp_path / "scripted.pt"),
                "--out",
                str(tmp_path / "s.safetensors"),
            ]
        )
        == 0
    )
    _roundtrip(tmp_path / "s.safetensors", trained)
    assert zipfile.is_zipfile(tmp_path / "scripted.pt")
