"""ONNX graphs (architecture as data, run by ONNX Runtime): a ``.onnx`` file with its own
weights, a folder with one graph and checkpoints of its weights (a run), or a folder of graphs
(one per checkpoint, ordered by step)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np

from ncviz.analysis.options import AnalysisOptions
from ncviz.analysis.table import Analysis, Result, RowKey, make_table, result_rows
from ncviz.errors import DataError, OptionError
from ncviz.extract import LayerInfo
from ncviz.extract.loader import capture_outputs
from ncviz.load import Dataset, DataSpec, load_dataset, read_checkpoint
from ncviz.load.checkpoints import number_from_name
from ncviz.load.onnx import OnnxGraph, OnnxRunner, read_onnx, with_weights
from ncviz.load.runs import Task, list_checkpoints
from ncviz.metrics import CollapseStatistics
from ncviz.sources.base import ProgressFn, Source, checkpoint_progress


def onnx_source(source: Path) -> tuple[Path, list[Path]] | None:
    """(graph, checkpoints) when ``source`` is an ONNX model (see the module docstring)."""
    if source.is_file():
        return (source, [source]) if source.suffix.lower() == ".onnx" else None
    if not source.is_dir():
        return None
    graphs = list_checkpoints(source, suffixes=(".onnx",))
    if not graphs:
        return None
    if len(graphs) > 1:
        return graphs[0], graphs
    return graphs[0], list_checkpoints(source) or graphs


def batches(dataset: Dataset, size: int) -> list[tuple[Any, Any]]:
    """(inputs, labels or targets) in batches of ``size``."""
    answers = dataset.answers
    return [
        (dataset.inputs[k : k + size], answers[k : k + size]) for k in range(0, len(dataset), size)
    ]


@dataclass(frozen=True)
class OnnxSource(Source):
    """An ONNX model and its checkpoints, measured on ``data``; ``classifier`` names the head
    module when the last linear layer is not it."""

    kind: ClassVar[str] = "onnx"
    path: Path
    graph: Path
    checkpoints: tuple[Path, ...]
    data: DataSpec | None = None
    classifier: str | None = None

    @classmethod
    def detect(cls, path: Path, options: AnalysisOptions) -> OnnxSource | None:
        found = onnx_source(path)
        if found is None:
            return None
        head = options.model.classifier if options.model is not None else None
        return cls(path, found[0], tuple(found[1]), options.data, head)

    @property
    def run_name(self) -> str:
        return self.path.stem if self.path.is_file() else self.path.name

    def _data(self) -> DataSpec:
        if self.data is None:
            raise OptionError("an ONNX model needs data: pass --data (a data spec or file).")
        return self.data

    def analyze(self, options: AnalysisOptions, progress: ProgressFn | None = None) -> Analysis:
        data = self._data()
        dataset = load_dataset(data)
        data_batches = batches(dataset, options.extract.batch_size)
        base = read_onnx(self.graph, classifier=self.classifier)
        rows: list[dict[str, Any]] = []
        results: dict[tuple[str, str], Result] = {}
        chosen = list(options.layers or base.default_layers())
        task: Task = "classification" if dataset.labels is not None else "regression"
        for index, path in enumerate(self.checkpoints):
            graph, epoch, step = self._graph_at(base, path)
            head = None
            if graph.classifier is not None and graph.weight is not None:
                head = (graph.classifier, SimpleNamespace(weight=graph.weight, bias=graph.bias))
            captured = capture_outputs(
                OnnxRunner(graph, chosen),
                data_batches,
                chosen,
                classifier=head,
                task=task,
                num_classes=dataset.num_classes if task == "classification" else None,
                min_count=options.metrics.min_count,
                sample_size=0,
                progress=checkpoint_progress(progress, index, len(self.checkpoints), path.name),
            )
            key = RowKey(self.run_name, path.name, epoch, step, data.split_label)
            for layer, item in captured.layers.items():
                statistics = item.measured
                if isinstance(statistics, CollapseStatistics):
                    result: Result = statistics.compute(np.array(dataset.classes), options.metrics)
                else:
                    result = statistics.compute(options.metrics)
                results[(path.name, layer)] = result
                rows += result_rows(key, layer, result)
        return Analysis(
            run=self.run_name,
            table=make_table(rows),
            results=results,
            layers=chosen,
            checkpoints=[p.name for p in self.checkpoints],
            task=task,
            source=str(self.path),
            data=data.to_dict(),
            model={"name": "onnx", "kwargs": {"graph": self.graph.name}},
            origin=self,
        )

    def _graph_at(self, base: OnnxGraph, path: Path) -> tuple[OnnxGraph, Any, Any]:
        """The graph of one checkpoint (``base``: the source's graph, read once), with its
        epoch and step."""
        if path.suffix.lower() == ".onnx":
            graph = base if path == base.path else read_onnx(path, classifier=base.classifier)
            number = number_from_name(path.name) if len(self.checkpoints) > 1 else None
            return graph, number, number
        state = read_checkpoint(path)
        return with_weights(base, state.state_dict, path.name), state.epoch, state.step

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
        """Every sample's features of one layer of one checkpoint (a 'sample' of all rows)."""
        path = next((p for p in self.checkpoints if p.name == checkpoint), None)
        if path is None:
            raise DataError(f"{checkpoint} is not a checkpoint of {self.run_name}.")
        graph, _, _ = self._graph_at(read_onnx(self.graph, classifier=self.classifier), path)
        dataset = load_dataset(self._data())
        captured = capture_outputs(
            OnnxRunner(graph, [layer]),
            batches(dataset, 256),
            [layer],
            num_classes=dataset.num_classes if dataset.labels is not None else None,
            sample_size=len(dataset),
            progress=progress,
        )
        labels = captured.sample_labels
        if dataset.labels is not None:
            labels = np.asarray(dataset.classes)[labels]
        else:
            labels = labels.reshape(len(labels), -1)[:, target]
        return captured.layers[layer].sample, labels

    def hookable_layers(self, data: DataSpec) -> tuple[list[LayerInfo], list[str]]:
        """Every layer of the graph with its output shape on two samples of ``data``, and
        the layers analysed by default."""
        graph = read_onnx(self.graph)
        sample = load_dataset(data).inputs[:2]
        outputs = OnnxRunner(graph, graph.layers)(sample)
        infos = [LayerInfo(name, "onnx", tuple(v.shape[1:])) for name, v in outputs.items()]
        return infos, graph.default_layers()
