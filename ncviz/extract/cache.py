"""Content-addressed on-disk cache of layer activations (N×d arrays in .npy files).

* key = SHA-256 of the checkpoint's bytes hash, the data fingerprint, the layer and the options;
* writes go to a unique temporary file in the cache folder and are published with
  ``os.replace`` (atomic on POSIX), so a reader never sees a partial entry and two processes
  writing the same entry leave one complete, valid file;
* the folder is bounded (``max_bytes``): after each write the least-recently-used entries
  (oldest modification time; a hit refreshes it) are removed until the total fits.

Location: ``NCVIZ_CACHE_DIR``, else ``~/.cache/ncviz/activations``; size cap ``NCVIZ_CACHE_MAX_GB``
(default 4 GiB).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_MAX_BYTES = 4 << 30
CACHE_VERSION = 1


def default_cache_dir() -> Path:
    env = os.environ.get("NCVIZ_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "ncviz" / "activations"


def cache_key(**parts: Any) -> str:
    """Stable hash of the parts (sorted JSON), with the cache format version."""
    text = json.dumps({"version": CACHE_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def default_max_bytes() -> int:
    """``NCVIZ_CACHE_MAX_GB`` (GiB) or 4 GiB."""
    value = os.environ.get("NCVIZ_CACHE_MAX_GB")
    return int(float(value) * 2**30) if value else DEFAULT_MAX_BYTES


class ActivationCache:
    def __init__(self, root: str | Path | None = None, max_bytes: int | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.max_bytes = int(max_bytes) if max_bytes is not None else default_max_bytes()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        """The cached array (memory-mapped, read-only), or None; a hit marks it recently used."""
        path = self.path(key)
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (FileNotFoundError, ValueError, OSError):
            return None
        with contextlib.suppress(OSError):  # a read-only cache still serves hits
            os.utime(path)
        return array

    @contextlib.contextmanager
    def writer(self, key: str, shape: tuple[int, int], dtype: np.dtype) -> Iterator[RowWriter]:
        """Yield a :class:`RowWriter` to append the rows in order; the entry is published
        atomically when the block exits without error and all rows were written, else dropped."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=".npy", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                rows = RowWriter(handle, shape, np.dtype(dtype))
                yield rows
                rows.close()
            os.replace(tmp_name, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
        self.evict()

    def put(self, key: str, array: np.ndarray) -> Path:
        with self.writer(key, array.shape, array.dtype) as out:
            out.write(array)
        return self.path(key)

    def entries(self) -> list[Path]:
        if not self.root.exists():
            return []
        return [p for p in self.root.glob("*/*.npy") if not p.name.startswith(".tmp-")]

    def size_bytes(self) -> int:
        return sum(_size(p) for p in self.entries())

    def evict(self) -> list[Path]:
        """Remove least-recently-used entries until the cache fits ``max_bytes``."""
        entries = sorted(self.entries(), key=_mtime)
        total = sum(_size(p) for p in entries)
        removed = []
        for path in entries:
            if total <= self.max_bytes:
                break
            size = _size(path)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
            total -= size
        return removed


class RowWriter:
    """Sequential writer of an N×d .npy file (header first, then rows in order)."""

    def __init__(self, handle: Any, shape: tuple[int, int], dtype: np.dtype) -> None:
        self._handle, self.shape, self.dtype = handle, tuple(shape), dtype
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                  "shape": self.shape}  # fmt: skip
        np.lib.format.write_array_header_1_0(handle, header)
        self.rows = 0

    def write(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.ndim != 2 or rows.shape[1] != self.shape[1]:
            raise ValueError(f"rows of shape {rows.shape} do not fit an entry of {self.shape}")
        self._handle.write(rows.tobytes())
        self.rows += len(rows)

    def close(self) -> None:
        if self.rows != self.shape[0]:
            raise ValueError(f"cache entry got {self.rows} of {self.shape[0]} rows")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0
