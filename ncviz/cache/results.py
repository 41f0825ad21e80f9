"""Finished per-checkpoint analysis results in the cache (metrics rows + per-class arrays).

Re-analysing a run (the dashboard re-opening it, the CLI run twice) skips loading, extraction and
statistics for every checkpoint whose file (path, size, modification time), data spec, layers and
options are unchanged. Entries are ``.npz`` files (no pickle) under ``<cache root>/results``,
written atomically and counted in the cache's one budget (:class:`~ncviz.cache.store.CacheStore`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ncviz.cache.store import CacheStore, cache_key
from ncviz.metrics import CollapseResult, RegressionResult
from ncviz.metrics.options import CollapseOptions

Result = CollapseResult | RegressionResult
#: (table rows, {layer: result}, {layer: {group: that group's own result}}) of one checkpoint.
Cached = tuple[list[dict[str, Any]], dict[str, Result], dict[str, dict[str, CollapseResult]]]
# 2: per-group results, accuracy_minority/majority; 3: groups typed; 4: conventions, peer rows
RESULTS_VERSION = 4


def checkpoint_stamp(path: Path) -> dict[str, Any]:
    """Cheap identity of a checkpoint file: resolved path, size and modification time."""
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def results_key(**parts: Any) -> str:
    return cache_key(results_version=RESULTS_VERSION, **parts)


def _encode(result: Result) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    arrays = dict(result.arrays)
    meta: dict[str, Any] = {"metrics": result.metrics, "warnings": list(result.warnings)}
    if isinstance(result, CollapseResult):
        meta["kind"] = "collapse"
        opts = result.options
        meta["options"] = {
            **asdict(opts),
            "minority_classes": None
            if opts.minority_classes is None
            else [str(c) for c in opts.minority_classes],
        }
        arrays["__classes"] = np.asarray(result.classes).astype(str)
        arrays["__dropped"] = np.asarray(result.dropped_classes).astype(str)
        arrays["__minority"] = np.asarray(result.minority_classes).astype(str)
    else:
        meta["kind"] = "regression"
    return meta, arrays


def _decode(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Result:
    if meta["kind"] == "regression":
        return RegressionResult(meta["metrics"], arrays, meta.get("warnings", []))
    special = {k: arrays.pop(k) for k in ("__classes", "__dropped", "__minority")}
    return CollapseResult(
        metrics=meta["metrics"],
        arrays=arrays,
        classes=special["__classes"],
        dropped_classes=special["__dropped"],
        minority_classes=special["__minority"],
        options=CollapseOptions(**meta["options"]),
        warnings=meta.get("warnings", []),
    )


class ResultCache:
    """Results under ``<root>/results`` of a cache store (default: the cache)."""

    def __init__(self, store: CacheStore | None = None) -> None:
        self.store = store or CacheStore()

    def path(self, key: str) -> Path:
        return self.store.folder("results") / f"{key}.npz"

    def get(self, key: str) -> Cached | None:
        """(table rows, {layer: result}, {layer: {group: result}}) of a cached checkpoint
        analysis, or None."""
        try:
            with np.load(self.path(key), allow_pickle=False) as archive:
                payload = json.loads(str(archive["__payload"]))
                stored = {name: archive[name] for name in archive.files if name != "__payload"}
        except (FileNotFoundError, OSError, ValueError, KeyError):
            return None
        self.store.touch(self.path(key))
        results: dict[str, Result] = {}
        groups: dict[str, dict[str, CollapseResult]] = {}
        for index, (layer, group, meta) in enumerate(payload["results"]):
            prefix = f"{index}|"
            arrays = {k[len(prefix) :]: v for k, v in stored.items() if k.startswith(prefix)}
            result = _decode(meta, arrays)
            if group is None:
                results[layer] = result
            elif isinstance(result, CollapseResult):  # groups are classification only
                groups.setdefault(layer, {})[group] = result
        return payload["rows"], results, groups

    def put(
        self,
        key: str,
        rows: list[dict[str, Any]],
        results: Mapping[str, Result],
        groups: Mapping[str, Mapping[str, CollapseResult]] | None = None,
    ) -> None:
        """Store a checkpoint's rows, layer results and (``groups[layer][group]``) its groups'
        own results."""
        arrays: dict[str, np.ndarray] = {}
        metas = []
        entries: list[tuple[str, str | None, Result]] = [
            (layer, None, result) for layer, result in results.items()
        ]
        for layer, per_group in (groups or {}).items():
            entries += [(layer, group, result) for group, result in per_group.items()]
        for index, (layer, group, result) in enumerate(entries):
            meta, result_arrays = _encode(result)
            metas.append((layer, group, meta))
            arrays.update({f"{index}|{name}": value for name, value in result_arrays.items()})
        payload = json.dumps({"rows": rows, "results": metas}, default=_json_default)
        with self.store.atomic(self.path(key), suffix=".npz") as handle:
            np.savez(handle, __payload=np.array(payload), **arrays)  # type: ignore[arg-type]


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in the results cache")
