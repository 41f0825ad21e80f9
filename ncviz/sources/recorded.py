"""A run the :class:`ncviz.Recorder` wrote: every (step, split) entry and layer, from the saved
sums (no model, no data needed)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ncviz.analysis.groups import (
    GroupParts,
    ResultKey,
    assemble_group_results,
    cross_group_rows,
)
from ncviz.analysis.options import AnalysisOptions
from ncviz.analysis.table import (
    Analysis,
    Measured,
    Result,
    RowKey,
    make_group_table,
    make_table,
    metric_rows,
)
from ncviz.errors import DataError
from ncviz.load.recorded import (
    group_layer_result,
    is_recorded_run,
    layer_result,
    open_recorded,
    read_entry,
    recorded_sample,
)
from ncviz.metrics.groups import GroupResult
from ncviz.sources.base import ProgressFn, Source


@dataclass(frozen=True)
class RecordedSource(Source):
    """A recorded run folder (``run.json`` of format ``ncviz-recorded/…`` and its entries)."""

    kind: ClassVar[str] = "recorded"
    path: Path

    @classmethod
    def detect(cls, path: Path, options: AnalysisOptions) -> RecordedSource | None:
        return cls(path) if path.is_dir() and is_recorded_run(path) else None

    def analyze(self, options: AnalysisOptions, progress: ProgressFn | None = None) -> Analysis:
        run = open_recorded(self.path)
        rows: list[dict[str, Any]] = []
        by_split: dict[str, dict[ResultKey, Result]] = {}
        parts_by_split: dict[str, GroupParts] = {}
        files: dict[tuple[str, str], str] = {}
        for index, entry in enumerate(run.entries):
            data = read_entry(self.path / entry.file)
            missing = [layer for layer in run.layers if layer not in data.layers]
            if missing:
                raise DataError(f"recorded entry {entry.file} lacks layers {missing[:3]}.")
            files[(entry.split, entry.label)] = str(self.path / entry.file)
            key = RowKey(run.name, entry.label, entry.step, entry.step, entry.split)
            measured = Measured()
            for layer in run.layers:
                where = f"{entry.file}, layer {layer!r}"
                measured.add(
                    key, layer, layer_result(data.layers[layer], run, where, options.metrics)
                )
            for group, per_layer in data.groups.items():
                for layer, state in per_layer.items():
                    if layer not in run.layers:
                        continue
                    where = f"{entry.file}, layer {layer!r} of group {group!r}"
                    result = group_layer_result(state, run, where, options.metrics)
                    measured.add_group(key, layer, group, result)
            measured.fold_into(
                entry.label,
                rows,
                by_split.setdefault(entry.split, {}),
                parts_by_split.setdefault(entry.split, {}),
            )
            for layer, values in entry.extra.items():
                rows += metric_rows(key, layer, values)
            if progress is not None:
                progress(index + 1, len(run.entries), entry.file)
        plain_rows = [r for r in rows if "group" not in r]
        group_rows = [r for r in rows if "group" in r]
        split_groups: dict[str, dict[ResultKey, GroupResult]] = {}
        for split in list(by_split):
            parts = parts_by_split.get(split, {})
            split_groups[split] = assemble_group_results(by_split[split], parts)
            group_rows += cross_group_rows(
                split_groups[split], [r for r in plain_rows if r["split"] == split]
            )
        shown = "train" if "train" in run.splits else run.splits[0]
        log = dict(run.log)
        if "step" in log:
            log["epoch"] = log.pop("step")
        return Analysis(
            run=run.name,
            table=make_table(plain_rows),
            results=by_split[shown],
            layers=list(run.layers),
            checkpoints=list(dict.fromkeys(e.label for e in run.entries)),
            task=run.task,
            log=log,
            source=str(self.path),
            split=shown,
            split_results=by_split,
            entry_files=files,
            events=run.events,
            group_table=make_group_table(group_rows),
            group_results=split_groups.get(shown, {}),
            split_group_results={k: v for k, v in split_groups.items() if v},
            origin=self,
        )

    def features(
        self,
        checkpoint: str,
        layer: str,
        *,
        split: str | None = None,
        target: int = 0,
        progress: ProgressFn | None = None,
        cache: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The entry's uniform sample of feature rows (a recorded run keeps no more)."""
        run = open_recorded(self.path)
        wanted = split or ("train" if "train" in run.splits else run.splits[0])
        entry = next((e for e in run.entries if e.split == wanted and e.label == checkpoint), None)
        if entry is None:
            raise DataError(f"the recorded run has no entry {checkpoint!r} on split {wanted!r}.")
        return recorded_sample(run, entry, layer, target)
