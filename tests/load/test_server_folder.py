"""Server-side browsing stays inside the allowed folder."""

from __future__ import annotations

import os

import pytest

from ncviz.errors import DataError
from ncviz.load.server_folder import allowed_root, list_entries, resolve_inside


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "data"
    (root / "runs" / "a").mkdir(parents=True)
    (root / "runs" / "a" / "epoch_1.safetensors").write_bytes(b"x")
    (tmp_path / "secret.txt").write_text("no")
    os.symlink(tmp_path / "secret.txt", root / "escape.txt")
    os.symlink(tmp_path, root / "up")
    os.symlink(root / "runs" / "a", root / "inside-link")
    return root


def test_paths_inside_resolve(tree):
    assert resolve_inside(tree, "runs/a/epoch_1.safetensors").is_file()
    assert resolve_inside(tree, "inside-link") == (tree / "runs" / "a").resolve()
    assert resolve_inside(tree, "") == tree.resolve()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("../secret.txt", "without '..'"),
        ("/etc/passwd", "relative"),
        ("runs/../../x", "'..'"),
        ("escape.txt", "leaves the data folder"),
        ("up/secret.txt", "leaves the data folder"),
        ("missing", "does not exist"),
    ],
)
def test_escapes_are_refused_with_one_line(tree, path, message):
    with pytest.raises(DataError, match=message) as info:
        resolve_inside(tree, path)
    assert "\n" not in str(info.value)


def test_listing_hides_links_that_leave(tree):
    assert list_entries(tree) == ["inside-link/", "runs/"]
    assert list_entries(tree, "runs/a") == ["runs/a/epoch_1.safetensors"]
    assert list_entries(tree, "inside-link") == ["inside-link/epoch_1.safetensors"]


def test_root_from_environment(tree, monkeypatch):
    monkeypatch.delenv("NCVIZ_DATA_DIR", raising=False)
    assert allowed_root() is None
    monkeypatch.setenv("NCVIZ_DATA_DIR", str(tree))
    assert allowed_root() == tree.resolve()


def test_parent_of_keeps_dots_in_names():
    from ncviz.load.server_folder import parent_of

    assert parent_of("runs.v2/exp1") == "runs.v2"
    assert parent_of("runs.v2") == ""
    assert parent_of("a/b.c/d") == "a/b.c"


def test_analysis_confined_to_the_data_folder_refuses_links_and_outside_data(tmp_path):
    import json
    from pathlib import Path

    from ncviz.analysis import analyze

    checkpoint = Path(__file__).resolve().parents[2] / "checkpoints" / "digits-mlp"
    root = tmp_path / "data"
    run = root / "run"
    run.mkdir(parents=True)
    (run / "epoch_1.safetensors").write_bytes((checkpoint / "epoch_0600.safetensors").read_bytes())
    spec = json.loads((checkpoint / "run.json").read_text())["model"]
    (tmp_path / "outside.csv").write_text("root:x:0:0:secret\n1,2\n")
    (run / "run.json").write_text(
        json.dumps({"model": spec, "data": str(tmp_path / "outside.csv")})
    )
    with pytest.raises(DataError, match=r"outside\.csv in the data folder links outside") as info:
        analyze(run, cache=False, confine_to=root)
    assert "secret" not in str(info.value)
    (run / "run.json").write_text(json.dumps({"model": spec, "data": "builtin:digits"}))
    os.symlink(checkpoint / "epoch_0010.safetensors", run / "epoch_2.safetensors")
    with pytest.raises(DataError, match=r"epoch_2\.safetensors in the data folder links outside"):
        analyze(run, cache=False, confine_to=root)
    os.unlink(run / "epoch_2.safetensors")
    assert analyze(run, cache=False, confine_to=root).checkpoints == ["epoch_1.safetensors"]
