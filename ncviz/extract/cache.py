"""Content-addressed on-disk cache of layer activations (N×d arrays in .npy files).

* key = SHA-256 of the checkpoint's bytes hash, the data fingerprint, the layer and the options;
* writes go to a unique temporary file in the cache folder and are published with
  ``os.replace`` (atomic on POSIX), so a reader never sees a partial entry and two processes
  writing the same entry leave one complete, valid file;
* the folder is bounded (``max_bytes``): after each write the least-recently-used entries
  (oldest modification time; a hit refreshes it) are removed until the total fits.

Location: ``NCVIZ_CACHE_DIR``, else ``~/.cache/ncviz/activations``.
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


class ActivationCache:
    def __init__(self, root: str | Path | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.max_bytes = int(max_bytes)

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
    def writer(self, key: str, shape: tuple[int, int], dtype: np.dtype) -> Iterator[np.ndarray]:
        """Yield a writable memory-mapped array; published atomically when the block exits
        without error, discarded otherwise."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=".npy", dir=path.parent)
        os.close(fd)
        try:
            array = np.lib.format.open_memmap(tmp_name, mode="w+", dtype=dtype, shape=shape)
            yield array
            array.flush()
            del array
            os.replace(tmp_name, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
        self.evict()

    def put(self, key: str, array: np.ndarray) -> Path:
        with self.writer(key, array.shape, array.dtype) as out:
            out[...] = array
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
