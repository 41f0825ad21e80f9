"""Layer activations in the cache: N×d ``.npy`` files keyed by content.

* key = SHA-256 of the checkpoint's bytes hash, the data fingerprint, the layer and the options;
* rows are written in order to a temporary file and published atomically (:class:`CacheStore`),
  so a reader never sees a partial entry and two processes writing the same entry leave one
  complete, valid file;
* entries count towards the cache's one budget (``NCVIZ_CACHE_MAX_GB``) with results and sweeps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ncviz.cache.store import CacheStore


class ActivationCache:
    """Activations under ``<root>/activations`` of the cache ``root`` (default: the cache)."""

    def __init__(self, root: str | Path | None = None, max_bytes: int | None = None) -> None:
        self.store = CacheStore(root, max_bytes)
        self.root = self.store.root
        self.max_bytes = self.store.max_bytes

    def path(self, key: str) -> Path:
        return self.store.folder("activations") / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        """The cached array (memory-mapped, read-only), or None; a hit marks it recently used."""
        path = self.path(key)
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (FileNotFoundError, ValueError, OSError):
            return None
        self.store.touch(path)
        return array

    @contextlib.contextmanager
    def writer(self, key: str, shape: tuple[int, int], dtype: np.dtype) -> Iterator[RowWriter]:
        """Yield a :class:`RowWriter` to append the rows in order; the entry is published
        atomically when the block exits without error and all rows were written, else dropped."""
        with self.store.atomic(self.path(key), suffix=".npy") as handle:
            rows = RowWriter(handle, shape, np.dtype(dtype))
            yield rows
            rows.close()

    def put(self, key: str, array: np.ndarray) -> Path:
        with self.writer(key, array.shape, array.dtype) as out:
            out.write(array)
        return self.path(key)

    def entries(self) -> list[Path]:
        return self.store.entries("activations")

    def size_bytes(self) -> int:
        return self.store.size_bytes()

    def evict(self) -> list[Path]:
        return self.store.evict()


class RowWriter:
    """Sequential writer of an N×d .npy file (header first, then rows in order)."""

    def __init__(self, handle: Any, shape: tuple[int, int], dtype: np.dtype) -> None:
        self._handle, self.shape, self.dtype = handle, tuple(shape), dtype
        header = {
            "descr": np.lib.format.dtype_to_descr(dtype),
            "fortran_order": False,
            "shape": self.shape,
        }
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
