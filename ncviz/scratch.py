"""Per-session scratch folders for uploads, removed once stale.

A browser session writes its uploads under ``<tmp>/ncviz-scratch/<random>``; every time a new
folder is made, folders untouched for ``max_age_hours`` (default 6, ``NCVIZ_SCRATCH_HOURS``) are
deleted, so a shared server does not accumulate uploads of closed sessions.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

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
