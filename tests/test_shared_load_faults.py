"""Shared-server behaviour: concurrent identical analyses, a killed job, a full cache, attacks."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ncviz.analysis import analyze
from ncviz.errors import DataError
from ncviz.extract import ActivationCache
from ncviz.load import load_dataset
from ncviz.server.scratch import cleanup_stale

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "checkpoints" / "digits-mlp"


def _copy_run(target: Path) -> Path:
    shutil.copytree(RUN, target)
    return target


def test_two_sessions_running_the_same_analysis_at_once_agree(tmp_path):
    cache = ActivationCache(tmp_path / "cache")
    runs = [_copy_run(tmp_path / f"session{i}" / "digits-mlp") for i in range(2)]
    results: dict[int, object] = {}

    def work(index: int) -> None:
        results[index] = analyze(
            runs[index], cache=cache, checkpoint_filter=lambda p: "06" in p.name
        )

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert results[0].table.equals(results[1].table)
    entries = cache.entries()
    layers, checkpoints = len(results[0].layers), len(results[0].checkpoints)
    assert len(entries) == layers * checkpoints  # one entry per (checkpoint content, layer)
    for entry in entries:
        assert np.load(entry).shape[0] == 1400


KILLED_CHILD = """
import sys
from ncviz.analysis import analyze
def progress(done, total, message):
    print(done, flush=True)
analyze(sys.argv[1], progress=progress)
"""


def test_a_killed_analysis_leaves_a_consistent_cache(tmp_path, monkeypatch):
    cache_dir = tmp_path / "cache"
    monkeypatch.setenv("NCVIZ_CACHE_DIR", str(cache_dir))
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_CHILD, str(RUN)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    for line in child.stdout:
        if int(line) >= 40:  # a few checkpoints in: kill it mid-way, without any cleanup
            child.kill()
            break
    child.wait(30)
    assert child.returncode != 0
    cache = ActivationCache(cache_dir)
    for entry in cache.entries():  # whatever was published is complete
        assert np.load(entry).shape[0] == 1400
    resumed = analyze(RUN)  # the next request recomputes what is missing
    fresh = analyze(RUN, cache=False)
    assert resumed.table.equals(fresh.table)


def test_a_full_cache_evicts_instead_of_failing(tmp_path):
    cache = ActivationCache(tmp_path / "cache", max_bytes=3 * 1400 * 128 * 4)  # three entries
    analysis = analyze(RUN, cache=cache, checkpoint_filter=lambda p: "00" in p.name)
    assert len(analysis.checkpoints) > 2
    assert cache.size_bytes() <= cache.max_bytes


def test_zip_with_parent_entries_is_refused(tmp_path):
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("../../etc/cat/1.png", b"x")
    with pytest.raises(DataError, match=r"'\.\.' or absolute paths"):
        load_dataset(str(path))


def test_stale_scratch_folders_are_removed(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    (old / "upload.pt").write_bytes(b"x")
    os.utime(old / "upload.pt", (1, 1))
    os.utime(old, (1, 1))
    assert cleanup_stale(1.0, root=tmp_path) == [old]
    assert new.exists() and not old.exists()


def test_oversize_upload_is_refused_in_the_app(monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("NCVIZ_MAX_UPLOAD_MB", "0.01")
    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120).run()
    at.segmented_control(key="source_mode").set_value("Upload").run()
    big = io.BytesIO(b"\0" * 50_000)
    at.file_uploader(key="upload_checkpoints").set_value(
        [("big.safetensors", big.getvalue(), "application/octet-stream")]
    ).run()
    at.button(key="analyse_upload").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "accepts files up to" in at.error[0].value


def test_uploads_are_stored_by_content(tmp_path):
    from ncviz.server.scratch import save_upload, save_uploads

    first = save_upload("data.npz", b"a" * 100, tmp_path)
    again = save_upload("data.npz", b"a" * 100, tmp_path)
    other = save_upload("data.npz", b"b" * 100, tmp_path)  # same name and size
    assert first == again and first != other and other.read_bytes() == b"b" * 100
    assert save_upload("../../etc/x.npz", b"c", tmp_path).parent.parent == tmp_path
    run, label = save_uploads([("e_1.npz", b"1"), ("e_2.npz", b"2")], tmp_path)
    assert label == "e (2 uploaded files)" and run.name == "e"
    assert sorted(p.name for p in run.iterdir()) == [
        "e_1.npz",
        "e_2.npz",
    ]
    assert save_uploads([("e_1.npz", b"1"), ("e_2.npz", b"2")], tmp_path)[0] == run
