"""A run.json's data files are found in the run folder; on the shared server (``confine_to``)
they never lead outside it, so an uploaded run cannot make the server read its files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ncviz.analysis.options import AnalysisOptions
from ncviz.errors import DataError
from ncviz.load import DataSpec
from ncviz.sources.checkpoints import CheckpointsSource, run_data

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "checkpoints" / "digits-mlp"


def _run(folder: Path, train_data: str) -> Path:
    folder.mkdir()
    shutil.copy(RUN / "epoch_0600.safetensors", folder)
    raw = json.loads((RUN / "run.json").read_text())
    (folder / "run.json").write_text(json.dumps({**raw, "train_data": train_data}))
    return folder


def _counts_file(path: Path) -> Path:
    labels = np.repeat(np.arange(10), [30] * 9 + [3])
    np.savez(path, inputs=np.zeros((len(labels), 64), np.float32), labels=labels)
    return path


def test_a_run_s_own_training_data_gives_its_counts(tmp_path):
    run = _run(tmp_path / "run", "train.npz")
    _counts_file(run / "train.npz")
    source = CheckpointsSource.detect(run, AnalysisOptions(confine_to=tmp_path))
    assert source is not None
    counts = source.training_counts()
    assert counts is not None and list(counts.values()) == [30] * 9 + [3]


@pytest.mark.parametrize("name", ["outside.npz", "ABSOLUTE"])
def test_an_uploaded_run_naming_a_file_outside_its_folder_gets_no_counts(tmp_path, name):
    outside = _counts_file(tmp_path / "outside.npz")  # a file of the server's, not the upload's
    spec = str(outside) if name == "ABSOLUTE" else "../../outside.npz"
    upload = tmp_path / "scratch"
    upload.mkdir()
    run = _run(upload / "run", spec)
    confined = CheckpointsSource.detect(run, AnalysisOptions(confine_to=upload))
    assert confined is not None and confined.training_counts() is None  # the run still opens
    with pytest.raises(DataError, match="outside"):
        run_data(DataSpec.parse(spec), run, upload)
    local = CheckpointsSource.detect(run, AnalysisOptions())  # a researcher's own machine
    assert local is not None and local.training_counts() is not None


def test_training_data_that_cannot_be_read_says_why(tmp_path):
    from tests.load.test_limits import npz_declaring

    run = _run(tmp_path / "run", "train.npz")
    npz_declaring(run / "train.npz", "inputs", (1 << 30,))  # 4 KB that declare 4 GiB
    source = CheckpointsSource.detect(run, AnalysisOptions(confine_to=tmp_path))
    assert source is not None  # the run opens; only its training counts fail, in one line
    with pytest.raises(DataError, match=r"declares 4\.0 GiB"):
        source.training_counts()
