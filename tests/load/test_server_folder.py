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
    [("../secret.txt", "without '..'"), ("/etc/passwd", "relative"), ("runs/../../x", "'..'"),
     ("escape.txt", "leaves the data folder"), ("up/secret.txt", "leaves the data folder"),
     ("missing", "does not exist")],
)  # fmt: skip
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
