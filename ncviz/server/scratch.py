"""Per-session scratch folders for uploads (stored by content hash), removed once stale.

A browser session writes its uploads under ``<tmp>/ncviz-scratch/<random>``; every time a new
folder is made, folders untouched for ``max_age_hours`` (default 6, ``NCVIZ_SCRATCH_HOURS``) are
deleted, so a shared server does not accumulate uploads of closed sessions.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ncviz.cache.store import atomic_write_bytes
from ncviz.errors import DataError
from ncviz.load.archive import unpack_run_zip

DEFAULT_MAX_AGE_HOURS = 6.0


def scratch_root() -> Path:
    root = Path(tempfile.gettempdir()) / "ncviz-scratch"
    root.mkdir(parents=True, exist_ok=True)
    return root


def cleanup_stale(max_age_hours: float | None = None, root: Path | None = None) -> list[Path]:
    """Delete scratch folders whose newest file is older than ``max_age_hours``."""
    if max_age_hours is None:
        max_age_hours = float(os.environ.get("NCVIZ_SCRATCH_HOURS", DEFAULT_MAX_AGE_HOURS))
    root = root or scratch_root()
    cutoff = time.time() - max_age_hours * 3600
    removed = []
    for folder in root.iterdir():
        if not folder.is_dir():
            continue
        newest = max((p.stat().st_mtime for p in folder.rglob("*")), default=folder.stat().st_mtime)
        if max(newest, folder.stat().st_mtime) < cutoff:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def new_session_folder() -> Path:
    """A fresh private folder (mode 700) for one session's uploads; stale ones are cleaned."""
    cleanup_stale()
    return Path(tempfile.mkdtemp(prefix="session-", dir=scratch_root()))


def max_upload_bytes() -> int:
    """Largest accepted upload (``NCVIZ_MAX_UPLOAD_MB``, default 1024 MB)."""
    return int(float(os.environ.get("NCVIZ_MAX_UPLOAD_MB", 1024)) * 2**20)


def _safe_name(name: str) -> str:
    """A file name without folders (an upload's name is chosen by the browser)."""
    return Path(str(name).replace("\\", "/")).name.lstrip(".") or "upload"


def save_upload(name: str, data: bytes | memoryview, folder: Path) -> Path:
    """Store an upload under its content hash: ``folder/<sha256[:20]>/<name>``.

    The same bytes always land in the same place (reruns reuse them) and different bytes never
    share a path, even with the same name and size — so a cached analysis keyed by the path can
    never answer for other content.
    """
    limit = max_upload_bytes()
    size = len(data)
    if size > limit:
        raise DataError(
            f"{_safe_name(name)} is {size / 2**20:.0f} MB; this server accepts files up to "
            f"{limit / 2**20:.0f} MB (ask the operator to raise NCVIZ_MAX_UPLOAD_MB)."
        )
    digest = hashlib.sha256(data).hexdigest()[:20]
    path = folder / digest / _safe_name(name)
    if not path.is_file():
        atomic_write_bytes(path, data)
    return path


def save_uploads(files: Sequence[tuple[str, bytes | memoryview]], folder: Path) -> tuple[Path, str]:
    """Uploaded files as one analysis source and its label: a single file as it is; several
    files as one run folder (named by their contents); a zip as the run folder it holds
    (checked before unpacking, see :func:`ncviz.load.archive.unpack_run_zip`)."""
    if not files:
        raise DataError("upload at least one checkpoint, features file or zipped run.")
    zips = [(n, d) for n, d in files if n.lower().endswith(".zip")]
    if zips:
        if len(files) > 1:
            raise DataError("upload a zipped run folder on its own, without other files.")
        archive = save_upload(*zips[0], folder)
        target = archive.parent / "run"
        if not target.is_dir():
            unpack_run_zip(archive, target, max_total=4 * max_upload_bytes())
        return target, Path(_safe_name(zips[0][0])).stem
    if len(files) == 1:
        path = save_upload(*files[0], folder)
        return path, path.name
    names = [_safe_name(n) for n, _ in files]
    if len(set(names)) != len(names):
        raise DataError("two uploaded files have the same name; rename one of them.")
    saved = [save_upload(n, d, folder) for n, d in files]
    digest = hashlib.sha256("".join(p.parent.name for p in saved).encode()).hexdigest()[:20]
    run = folder / f"run-{digest}" / run_name(names)  # its folder name is the run's name
    run.mkdir(parents=True, exist_ok=True)
    for path in saved:
        link = run / path.name
        if not link.exists():  # a copy, not a hard link: ONNX refuses linked data files
            shutil.copyfile(path, link)
    return run, f"{run.name} ({len(saved)} uploaded files)"


Need = Literal["needed", "optional", "unused"]


@dataclass(frozen=True)
class UploadNeeds:
    """What an upload form must ask for, given the uploaded files' names: the architecture
    (``model``) and the dataset (``data``) are each needed, optional, or unused; ``note`` says
    why, for the form."""

    model: Need
    data: Need
    note: str = ""


def upload_needs(names: Sequence[str]) -> UploadNeeds:
    """What uploaded files need beside them (decided by their names, without reading them).

    >>> upload_needs(["model.onnx", "model.onnx.data"]).model, upload_needs(["m.onnx"]).data
    ('unused', 'needed')
    >>> features = upload_needs(["f1.npz", "f2.npz"])
    >>> features.model, features.data, upload_needs(["run.zip"]).model
    ('unused', 'unused', 'optional')
    >>> upload_needs(["epoch_1.safetensors"]).model
    'needed'
    """
    suffixes = {Path(name).suffix.lower() for name in names}
    if ".onnx" in suffixes:
        return UploadNeeds(
            "unused",
            "needed",
            "An ONNX graph runs as data (its module names are the layers): no architecture is "
            "read, only a dataset to run it on.",
        )
    if suffixes and suffixes <= {".npz"}:
        return UploadNeeds(
            "unused",
            "unused",
            "Features files carry their own features and labels (and classifier): no model or "
            "dataset is read.",
        )
    if ".zip" in suffixes:
        return UploadNeeds(
            "optional",
            "optional",
            "A zipped recorded run (or a folder of features files) carries everything it needs; "
            "the architecture and dataset are read only for a zip of checkpoints.",
        )
    return UploadNeeds("needed", "needed")


def run_name(names: Sequence[str]) -> str:
    """The name of a run uploaded as several files: its ONNX graph's, else what the files'
    names share (``epoch_``), else "run".

    >>> run_name(["resnet.onnx", "epoch_1.safetensors"]), run_name(["e_1.npz", "e_2.npz"])
    ('resnet', 'e')
    >>> run_name(["a.pt", "b.pt"])
    'run'
    """
    graphs = sorted(Path(n).stem for n in names if n.lower().endswith(".onnx"))
    if graphs:
        return _safe_name(graphs[0])
    stems = [Path(n).stem for n in names]
    common = os.path.commonprefix(stems).strip("_-. ")  # noqa: RUF071 (characters, not paths)
    return _safe_name(common) if common else "run"
