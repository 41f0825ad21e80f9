"""On-disk cache of finished per-checkpoint analysis results (metrics rows + per-class arrays).

Re-analysing a run (the dashboard re-opening it, the CLI run twice) skips loading, extraction and
statistics for every checkpoint whose file (path, size, modification time), data spec, layers and
options are unchanged. Entries are ``.npz`` files (no pickle) written atomically (temp + rename)
under ``<cache root>/results``.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ncviz.extract.cache import cache_key, default_cache_dir
from ncviz.metrics import CollapseResult, RegressionResult
from ncviz.metrics.options import CollapseOptions

Result = CollapseResult | RegressionResult
RESULTS_VERSION = 1


def checkpoint_stamp(path: Path) -> dict[str, Any]:
    """Cheap identity of a checkpoint file: resolved path, size and modification time."""
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def results_key(**parts: Any) -> str:
    return cache_key(results_version=RESULTS_VERSION, **parts)


def _encode(result: Result) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    arrays = dict(result.arrays)
    meta: dict[str, Any] = {"metrics": result.metrics}
    if isinstance(result, CollapseResult):
        meta["kind"] = "collapse"
        opts = result.options
        meta["options"] = {
            "global_mean": opts.global_mean, "dist_exp": opts.dist_exp, "tau": opts.tau,
            "minority_classes": None if opts.minority_classes is None
            else [str(c) for c in opts.minority_classes],
            "min_count": opts.min_count, "max_matrix_classes": opts.max_matrix_classes,
        }  # fmt: skip
        arrays["__classes"] = np.asarray(result.classes).astype(str)
        arrays["__dropped"] = np.asarray(result.dropped_classes).astype(str)
        arrays["__minority"] = np.asarray(result.minority_classes).astype(str)
    else:
        meta["kind"] = "regression"
    return meta, arrays


def _decode(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Result:
    if meta["kind"] == "regression":
        return RegressionResult(metrics=meta["metrics"], arrays=arrays)
    special = {k: arrays.pop(k) for k in ("__classes", "__dropped", "__minority")}
    return CollapseResult(
        metrics=meta["metrics"],
        arrays=arrays,
        classes=special["__classes"],
        dropped_classes=special["__dropped"],
        minority_classes=special["__minority"],
        options=CollapseOptions(**meta["options"]),
    )


class ResultCache:
    def __init__(self, root: str | Path | None = None) -> None:
        base = Path(root) if root is not None else default_cache_dir()
        self.root = base / "results"

    def path(self, key: str) -> Path:
        return self.root / f"{key}.npz"

    def get(self, key: str) -> tuple[list[dict[str, Any]], dict[str, Result]] | None:
        """(table rows, {layer: result}) of a cached checkpoint analysis, or None."""
        try:
            with np.load(self.path(key), allow_pickle=False) as archive:
                payload = json.loads(str(archive["__payload"]))
                stored = {name: archive[name] for name in archive.files if name != "__payload"}
        except (FileNotFoundError, OSError, ValueError, KeyError):
            return None
        results = {}
        for index, (layer, meta) in enumerate(payload["results"]):
            prefix = f"{index}|"
            arrays = {k[len(prefix) :]: v for k, v in stored.items() if k.startswith(prefix)}
            results[layer] = _decode(meta, arrays)
        return payload["rows"], results

    def put(self, key: str, rows: list[dict[str, Any]], results: dict[str, Result]) -> None:
        arrays: dict[str, np.ndarray] = {}
        metas = []
        for index, (layer, result) in enumerate(results.items()):
            meta, result_arrays = _encode(result)
            metas.append((layer, meta))
            arrays.update({f"{index}|{name}": value for name, value in result_arrays.items()})
        payload = json.dumps({"rows": rows, "results": metas}, default=_json_default)
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=self.root)
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, __payload=np.array(payload), **arrays)
            os.replace(tmp, self.path(key))
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in the results cache")
