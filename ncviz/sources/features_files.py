"""Features files (no model): one ``.safetensors``/``.npz`` with ``features.<layer>`` and labels
or targets, or a folder of them (a run: one file per step, ordered by the step in the name or
its metadata)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ncviz.analysis.groups import GroupParts, ResultKey, split_groups
from ncviz.analysis.options import AnalysisOptions
from ncviz.analysis.table import (
    Analysis,
    Measured,
    Result,
    RowKey,
    make_group_table,
    make_table,
)
from ncviz.errors import DataError, did_you_mean
from ncviz.load import is_features_file, read_features_file
from ncviz.load.features_file import features_file_step, features_folder
from ncviz.metrics import CollapseResult, collapse_result, regression_result
from ncviz.metrics.groups import group_result
from ncviz.sources.base import ProgressFn, Source

SPLIT = "features"


@dataclass(frozen=True)
class FeaturesFilesSource(Source):
    """One features file, or a folder of them."""

    kind: ClassVar[str] = "features"
    path: Path
    files: tuple[Path, ...]

    @classmethod
    def detect(cls, path: Path, options: AnalysisOptions) -> FeaturesFilesSource | None:
        if path.is_file() and is_features_file(path):
            return cls(path, (path,))
        if path.is_dir() and (files := features_folder(path)):
            return cls(path, tuple(files))
        return None

    @property
    def run_name(self) -> str:
        return self.path.stem if self.path.is_file() else self.path.name

    def analyze(self, options: AnalysisOptions, progress: ProgressFn | None = None) -> Analysis:
        rows: list[dict[str, Any]] = []
        results: dict[ResultKey, Result] = {}
        parts: GroupParts = {}
        layers: list[str] = []
        regression = False
        for path in self.files:
            step = features_file_step(path) if len(self.files) > 1 else None
            file_results, file_groups, regression = _file_results(path, options)
            layers = layers or list(file_results)
            key = RowKey(self.run_name, path.name, step, step, SPLIT)
            measured = Measured()
            for layer, result in file_results.items():
                measured.add(key, layer, result)
                for group, own in file_groups.get(layer, {}).items():
                    measured.add_group(key, layer, group, own)
            measured.fold_into(path.name, rows, results, parts)
        rows, group_rows, group_results = split_groups(rows, results, parts)
        return Analysis(
            run=self.run_name,
            table=make_table(rows),
            results=results,
            layers=layers,
            checkpoints=[p.name for p in self.files],
            task="regression" if regression else "classification",
            source=str(self.path),
            split=SPLIT,
            split_results={SPLIT: results},
            group_table=make_group_table(group_rows),
            group_results=group_results,
            split_group_results={SPLIT: group_results} if group_results else {},
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
        path = next((p for p in self.files if p.name == checkpoint), None)
        if path is None:
            raise DataError(f"{checkpoint} is not a file of {self.run_name}.")
        features = read_features_file(path)
        if layer not in features.layers:
            raise DataError(
                f"{path.name} has no layer {layer!r}; {did_you_mean(layer, features.layers)}."
            )
        if features.labels is not None:
            return features.layers[layer].numpy(), np.asarray(features.labels)
        assert features.targets is not None  # a features file holds labels or targets
        return features.layers[layer].numpy(), features.targets[:, target].numpy()


def _file_results(
    path: Path, options: AnalysisOptions
) -> tuple[dict[str, Result], dict[str, dict[str, CollapseResult]], bool]:
    """Every layer's result of one features file, every group's own result of each layer (by
    layer, then group), and whether the file holds regression targets."""
    features = read_features_file(path)
    results: dict[str, Result] = {}
    groups: dict[str, dict[str, CollapseResult]] = {}
    weight_layer = None
    if features.weight is not None:
        matching = [n for n, t in features.layers.items() if t.shape[1] == features.weight.shape[1]]
        weight_layer = matching[-1] if matching else None
        if weight_layer is None:
            raise DataError(
                f"{path.name}: classifier.weight has {features.weight.shape[1]} columns but no "
                "layer has that dimension."
            )
    regression = features.labels is None
    for layer, tensor in features.layers.items():
        w = features.weight if layer == weight_layer else None
        b = features.bias if layer == weight_layer else None
        if regression:
            results[layer] = regression_result(
                tensor, features.targets, w, bias=b, convention=options.metrics.convention
            )
            continue
        ood = None if features.ood is None else features.ood.get(layer)
        results[layer] = collapse_result(
            tensor, features.labels, w, b, ood=ood, options=options.metrics
        )
        if features.groups is not None:
            grouped = group_result(
                tensor, features.labels, features.groups, w, b, options=options.metrics
            )
            groups[layer] = dict(grouped.results)
    return results, groups, regression
