"""Declared sizes are refused before allocation: data bombs, image bombs, giant architectures."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from ncviz.analysis import analyze
from ncviz.errors import DataError, OptionError
from ncviz.load import build_model, load_dataset
from ncviz.load.features_file import read_features_file

ROOT = Path(__file__).resolve().parents[2]
CHECKPOINT = ROOT / "checkpoints" / "digits-mlp" / "epoch_0600.safetensors"
MLP = {
    "name": "mlp",
    "kwargs": {"in_features": 64, "num_classes": 10, "widths": [128] * 3, "batchnorm": True},
}


def npz_declaring(path: Path, name: str, shape: tuple[int, ...]) -> Path:
    """An .npz whose member's header declares ``shape`` float32 (the data itself is absent)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": shape}
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{name}.npy", header.getvalue() + b"\0" * 64)
        labels = io.BytesIO()
        np.save(labels, np.zeros(shape[0] if shape[0] < 10 else 10, np.int64))
        archive.writestr("labels.npy", labels.getvalue())
    return path


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares width × height (greyscale); the image data is a stub."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0"))
        + chunk(b"IEND", b"")
    )


def test_npz_declaring_4_gib_is_refused_from_its_header(tmp_path):
    bomb = npz_declaring(tmp_path / "bomb.npz", "inputs", (1 << 30,))
    assert bomb.stat().st_size < 10_000
    with pytest.raises(DataError, match=r"declares 4\.0 GiB .* limit is 2\.0 GiB"):
        load_dataset(str(bomb))
    features = npz_declaring(tmp_path / "feats.npz", "features.fc", (1 << 30,))
    with pytest.raises(DataError, match=r"declares 4\.0 GiB"):
        read_features_file(features)


def test_cli_refuses_bombs_in_one_line_with_small_peak_memory(tmp_path):
    bomb = npz_declaring(tmp_path / "bomb.npz", "inputs", (1 << 30,))
    images = tmp_path / "images.zip"
    with zipfile.ZipFile(images, "w") as archive:
        for k in range(3):
            archive.writestr(f"cat/{k}.png", png_declaring(12000, 12000))
    giant = json.dumps(
        {"name": "mlp", "kwargs": {"in_features": 64, "num_classes": 10, "widths": [40000, 40000]}}
    )
    cases = [
        (["--data", str(bomb), "--model", json.dumps(MLP)], "declares 4.0 GiB"),
        (["--data", str(images), "--model", json.dumps(MLP)], "12000×12000 pixels"),
        (["--data", "builtin:digits", "--model", giant], "million parameters"),
    ]
    # each CLI runs under a small wrapper whose RUSAGE_CHILDREN is that CLI alone (this test
    # process's own children include every server and worker earlier tests started)
    wrapper = (
        "import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
        "sys.exit(done.returncode)"
    )
    peak_kib = 0
    for args, message in cases:
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                wrapper,
                sys.executable,
                "-m",
                "ncviz",
                "analyze",
                str(CHECKPOINT),
                "--no-cache",
                "--out",
                str(tmp_path / "out"),
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        *lines, peak = done.stderr.splitlines()
        peak_kib = max(peak_kib, int(peak))
        errors = [line for line in lines if line.startswith("ncviz:")]
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-400:]
        assert len(errors) == 1 and message in errors[0], done.stderr[-400:]
    assert peak_kib < 1024 * 1024, f"peak RSS {peak_kib / 1024:.0f} MiB"


def test_image_zip_pixel_budget(tmp_path):
    images = tmp_path / "many.zip"
    with zipfile.ZipFile(images, "w") as archive:
        for k in range(5):  # 5 × 15.2 Mpx: each under the per-image limit, 76 Mpx in all
            archive.writestr(f"dog/{k}.png", png_declaring(3900, 3900))
    with pytest.raises(DataError, match="million pixels in all"):
        load_dataset(str(images))


def test_giant_architecture_is_refused_without_allocating():
    spec = {
        "name": "mlp",
        "kwargs": {"in_features": 64, "num_classes": 10, "widths": [40000, 40000]},
    }
    with pytest.raises(OptionError, match=r"1,603 million parameters; the limit is 500 million"):
        build_model(spec)


def test_code_running_model_options_need_the_cli_flag(tmp_path):
    spec = {"name": "hf:" + str(tmp_path), "kwargs": {"trust_remote_code": True}}
    with pytest.raises(OptionError, match="only with `ncviz analyze --trust-remote-code`"):
        build_model(spec)
    run = tmp_path / "run"
    run.mkdir()
    (run / "epoch_1.safetensors").write_bytes(CHECKPOINT.read_bytes())
    (run / "run.json").write_text(json.dumps({"model": spec, "data": "builtin:digits"}))
    with pytest.raises(OptionError, match="trust_remote_code would run Python code"):
        analyze(run, cache=False)


def test_a_state_dict_with_a_features_module_is_a_checkpoint():
    """digits-cnn's CNN has a `features` module: its checkpoint is not a features file."""
    checkpoint = ROOT / "checkpoints" / "digits-cnn" / "epoch_0300.safetensors"
    spec = json.loads((checkpoint.parent / "run.json").read_text())["model"]
    analysis = analyze(
        checkpoint, "builtin:digits?shape=image&per_class=20", model=spec, cache=False
    )
    assert analysis.metrics_at("epoch_0300.safetensors", analysis.layers[-1])["accuracy"] > 0.9
