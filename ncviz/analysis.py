"""Run × checkpoints × layers → a tidy metrics table, plus the per-class arrays for plots.

``analyze`` is the one call behind ``ncviz analyze`` and the dashboard. It accepts a run folder, a
single checkpoint, or a features file (no model), and returns an :class:`Analysis` whose ``table``
has one row per (run, checkpoint, epoch, step, layer, split, metric) with ``value``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import torch

from ncviz.cache import ResultCache, checkpoint_stamp, results_key
from ncviz.distributed import world
from ncviz.errors import CheckpointError, DataError, OptionError
from ncviz.extract import (
    INPUT_SUFFIX,
    ActivationCache,
    ExtractOptions,
    LayerFeatures,
    LayerInfo,
    default_layers,
    extract,
    list_layers,
)
from ncviz.extract.extractor import ProgressFn
from ncviz.extract.loader import capture_outputs
from ncviz.feature_learning import feature_learning_rows
from ncviz.language import (
    DEFAULT_MIN_COUNT,
    TokenCorpus,
    class_names,
    find_tokenizer,
    is_token_corpus,
    lm_head,
    read_corpus,
    token_features,
    token_layers,
    token_statistics,
)
from ncviz.load import (
    Dataset,
    DataSpec,
    ModelSpec,
    build_model,
    classifier_module,
    is_features_file,
    load_dataset,
    load_weights,
    read_checkpoint,
    read_features_file,
)
from ncviz.load.checkpoints import CHECKPOINT_SUFFIXES, number_from_name
from ncviz.load.features_file import features_file_step, features_folder
from ncviz.load.onnx import OnnxGraph, OnnxRunner, read_onnx, with_weights
from ncviz.load.recorded import (
    group_layer_result,
    is_recorded_run,
    layer_result,
    open_recorded,
    read_entry,
    recorded_sample,
)
from ncviz.load.runs import is_run, list_checkpoints, open_run, run_events
from ncviz.load.server_folder import check_inside
from ncviz.metrics import (
    CollapseResult,
    RegressionResult,
    collapse_result,
    regression_result,
)
from ncviz.metrics.groups import (
    GroupResult,
    assemble_groups,
    group_key,
    group_result,
    split_group_key,
)

TABLE_COLUMNS = ["run", "checkpoint", "epoch", "step", "layer", "split", "metric", "value"]
GROUP_COLUMNS = [*TABLE_COLUMNS[:6], "group", *TABLE_COLUMNS[6:]]
Result = CollapseResult | RegressionResult


@dataclass
class Analysis:
    """Tidy metrics (``table``) and ``results[(checkpoint, layer)]`` with the per-class arrays."""

    run: str
    table: pd.DataFrame
    results: dict[tuple[str, str], Result] = field(default_factory=dict)
    layers: list[str] = field(default_factory=list)
    checkpoints: list[str] = field(default_factory=list)
    task: str = "classification"
    log: dict[str, list[Any]] = field(default_factory=dict)
    source: str = ""
    data: dict[str, Any] | None = None
    model: dict[str, Any] | None = None
    split: str | None = None
    split_results: dict[str, dict[tuple[str, str], Result]] = field(default_factory=dict)
    entry_files: dict[tuple[str, str], str] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    # per-group collapse (data with groups: environments, domains): rows with a "group" column
    # and, per (checkpoint, layer), the groups' results and cross-group geometry
    group_table: pd.DataFrame = field(default_factory=lambda: _group_table([]))
    group_results: dict[tuple[str, str], GroupResult] = field(default_factory=dict)
    split_group_results: dict[str, dict[tuple[str, str], GroupResult]] = field(default_factory=dict)

    @property
    def groups(self) -> list[str]:
        """The groups of the data (environments, domains), in their order; [] without groups."""
        for result in self.group_results.values():
            return list(result.groups)
        return []

    @property
    def splits(self) -> list[str]:
        """The data splits in the table (a recorded run may hold "train" and "test")."""
        splits = dict.fromkeys(self.table["split"].dropna())
        return sorted(splits, key=lambda s: (s != "train", s != "test"))

    def for_split(self, split: str) -> Analysis:
        """The same analysis restricted to one split: its table rows, results and checkpoints."""
        if split not in self.split_results:
            raise OptionError(f"split {split!r} is not in this analysis ({self.splits}).")
        table = self.table[self.table["split"] == split].reset_index(drop=True)
        groups = self.group_table[self.group_table["split"] == split].reset_index(drop=True)
        present = set(table["checkpoint"])
        return replace(
            self,
            table=table,
            results=self.split_results[split],
            checkpoints=[c for c in self.checkpoints if c in present],
            split=split,
            group_table=groups,
            group_results=self.split_group_results.get(split, {}),
        )

    def metrics_at(self, checkpoint: str, layer: str) -> dict[str, float]:
        """Every metric of one checkpoint and layer."""
        t = self.table
        rows = t[(t["checkpoint"] == checkpoint) & (t["layer"] == layer)]
        if self.split is not None:
            rows = rows[rows["split"] == self.split]
        return dict(zip(rows["metric"], rows["value"]))

    def epochs(self) -> list[int | None]:
        """Epoch of each checkpoint, in order (None where unknown)."""
        by_checkpoint = self.table.drop_duplicates("checkpoint").set_index("checkpoint")["epoch"]
        return [
            None if pd.isna(by_checkpoint[c]) else int(by_checkpoint[c]) for c in self.checkpoints
        ]

    def terminal_phase_onset(self) -> int | None:
        """First epoch with zero training error: from the run's per-epoch log when it has one,
        else the first checkpoint whose classifier reaches training accuracy 1."""
        return terminal_phase_onset(self.log, self.table)

    def group_summary(self) -> str:
        """A compact text table of each group's headline metrics (last checkpoint, last
        layer); empty without groups."""
        return group_summary_text(self) if self.groups else ""

    def tidy(self) -> pd.DataFrame:
        """Every row, the per-group ones included: the table with a ``group`` column (empty for
        rows over all samples) when the data have groups, else the table itself."""
        if self.group_table.empty:
            return self.table
        pooled = self.table.assign(group=pd.NA)[GROUP_COLUMNS]
        return pd.concat([pooled, self.group_table], ignore_index=True)

    def save(self, out_dir: str | Path) -> list[Path]:
        """Write ``metrics.parquet`` and ``metrics.csv`` (:meth:`tidy`) into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / "metrics.parquet", out / "metrics.csv"]
        table = self.tidy()
        table.to_parquet(paths[0], index=False)
        table.to_csv(paths[1], index=False)
        return paths

    def summary(self, keys: tuple[str, ...] | None = None) -> str:
        """A compact text table: the last checkpoint's headline metrics per layer."""
        if self.table.empty:
            return "no metrics"
        keys = keys or (
            ("nc1", "nc1_trace_ratio", "nc2_etf_distance", "nc3", "nc4", "accuracy")
            if self.task != "regression"
            else ("nrc1", "nrc2", "nrc3")
        )
        last = self.table[self.table["checkpoint"] == self.checkpoints[-1]]
        if self.layers:  # rows of other layers (e.g. --agop's linear inputs) are left out
            last = last[last["layer"].isin(self.layers)]
        if self.split is not None:
            last = last[last["split"] == self.split]
        wide = last.pivot_table(index="layer", columns="metric", values="value", sort=False)
        shown = wide[[k for k in keys if k in wide.columns]]
        split = f" ({self.split})" if self.split is not None and len(self.splits) > 1 else ""
        title = f"{self.run} — {self.checkpoints[-1]}{split}"
        return title + "\n" + shown.to_string(float_format="%.4g")


GROUP_SUMMARY = ("accuracy", "nc1", "nc2_etf_distance", "etf_alignment", "prototype_distance")


def group_summary_text(analysis: Analysis, keys: tuple[str, ...] = GROUP_SUMMARY) -> str:
    """Per group, the headline metrics at the last checkpoint and last layer."""
    table = analysis.group_table
    rows = table[(table["checkpoint"] == analysis.checkpoints[-1])
                 & (table["layer"] == analysis.layers[-1])]  # fmt: skip
    wide = rows.pivot_table(index="group", columns="metric", values="value", sort=False)
    shown = wide[[k for k in keys if k in wide.columns]]
    title = f"per group at {analysis.layers[-1]}"
    return title + "\n" + shown.to_string(float_format="%.4g")


def terminal_phase_onset(log: Mapping[str, list[Any]] | None, table: pd.DataFrame) -> int | None:
    """First epoch with training accuracy 1 (zero training error; Papyan et al. 2020's TPT)."""
    if log and log.get("train_acc") and log.get("epoch"):
        for epoch, accuracy in zip(log["epoch"], log["train_acc"]):
            if accuracy is not None and accuracy >= 1.0:
                return int(epoch)
        return None
    train = table[(table["metric"] == "accuracy") & (table["split"] == "train")]
    reached = train[train["value"] >= 1.0].dropna(subset=["epoch"])
    return None if reached.empty else int(reached["epoch"].min())


def _rows(
    result: Result, run: str, checkpoint: str, epoch: Any, step: Any, layer: str, split: str
) -> list[dict[str, Any]]:
    return [
        {"run": run, "checkpoint": checkpoint, "epoch": epoch, "step": step, "layer": layer,
         "split": split, "metric": key, "value": float(value)}
        for key, value in result.metrics.items()
    ]  # fmt: skip


def _table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    for column in ("epoch", "step"):
        table[column] = pd.array(table[column], dtype="Int64")
    return table


def _group_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=GROUP_COLUMNS)
    for column in ("epoch", "step"):
        table[column] = pd.array(table[column], dtype="Int64")
    return table


def _with_groups(
    rows: list[dict[str, Any]], results: dict[tuple[str, str], Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict, dict[tuple[str, str], GroupResult]]:
    """(plain rows, group rows, plain results, group results) of one split: per-group rows and
    results (keyed by :func:`group_key`) apart from the plain ones, each (checkpoint, layer)'s
    :class:`GroupResult` assembled, and its cross-group rows added."""
    plain_rows = [r for r in rows if "group" not in r]
    plain, assembled = _assemble_groups(results)
    group_rows = [r for r in rows if "group" in r] + _cross_group_rows(assembled, plain_rows)
    return plain_rows, group_rows, plain, assembled


def _assemble_groups(
    results: dict[tuple[str, str], Any],
) -> tuple[dict[tuple[str, str], Any], dict[tuple[str, str], GroupResult]]:
    """The plain results, and per (checkpoint, layer) the groups' results assembled into a
    :class:`GroupResult` (cross-group distances and ETF from their class means)."""
    plain: dict[tuple[str, str], Any] = {}
    parts: dict[tuple[str, str], dict[str, CollapseResult]] = {}
    for (checkpoint, key), result in results.items():
        layer, group = split_group_key(key)
        if group is None:
            plain[(checkpoint, layer)] = result
        else:
            parts.setdefault((checkpoint, layer), {})[group] = result
    assembled = {}
    for where, per_group in parts.items():
        pooled = plain.get(where)
        if pooled is None:
            continue
        assembled[where] = assemble_groups(
            per_group, sorted(per_group), np.asarray(pooled.classes),
            pooled_means=pooled.arrays["class_means"],
        )  # fmt: skip
    return plain, assembled


def _cross_group_rows(
    assembled: dict[tuple[str, str], GroupResult], plain_rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``etf_alignment`` and ``prototype_distance`` rows of every group (computed from the
    assembled results: a cache holds only the groups' own results)."""
    rows = []
    for (checkpoint, layer), result in assembled.items():
        template = next((r for r in plain_rows if r["checkpoint"] == checkpoint), None)
        if template is None:
            continue
        for group in result.groups:
            metrics = result.group_metrics(group)
            rows += [
                {**template, "layer": layer, "group": group, "metric": key, "value": metrics[key]}
                for key in ("etf_alignment", "prototype_distance")
                if key in metrics
            ]
    return rows


def _features_file_results(
    path: Path, metric_options: Mapping[str, Any]
) -> tuple[dict[str, Result], bool]:
    """Every layer's result of one features file, and whether it holds regression targets."""
    features = read_features_file(path)
    results: dict[str, Result] = {}
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
        if regression:
            results[layer] = regression_result(tensor, features.targets, w)
        else:
            b = features.bias if layer == weight_layer else None
            results[layer] = collapse_result(tensor, features.labels, w, b, **metric_options)
            if features.groups is not None:
                grouped = group_result(tensor, features.labels, features.groups, w, b,
                                       **metric_options)  # fmt: skip
                results.update({group_key(layer, g): r for g, r in grouped.results.items()})
    return results, regression


def _analyze_features_files(
    paths: list[Path], run_name: str, source: Path, metric_options: Mapping[str, Any]
) -> Analysis:
    """One features file, or a folder of them (a run: one file per step, ordered by the step in
    the file name or its metadata)."""
    rows, results, layers = [], {}, []
    regression = False
    for path in paths:
        step = features_file_step(path) if len(paths) > 1 else None
        file_results, regression = _features_file_results(path, metric_options)
        layers = layers or list(file_results)
        split = "features"
        for key, result in file_results.items():
            results[(path.name, key)] = result
            layer, group = split_group_key(key)
            new_rows = _rows(result, run_name, path.name, step, step, layer, split)
            rows += new_rows if group is None else [{**r, "group": group} for r in new_rows]
    rows, group_rows, results, group_results = _with_groups(rows, results)
    layers = [layer for layer in layers if split_group_key(layer)[1] is None]
    return Analysis(
        run=run_name,
        table=_table(rows),
        results=results,
        layers=layers,
        checkpoints=[p.name for p in paths],
        task="regression" if regression else "classification",
        source=str(source),
        split="features",
        split_results={"features": results},
        group_table=_group_table(group_rows),
        group_results=group_results,
        split_group_results={"features": group_results} if group_results else {},
    )


def _analyze_recorded(source: Path, metric_options: Mapping[str, Any]) -> Analysis:
    """A run the Recorder wrote: every (step, split) entry, every layer, from the saved sums."""
    run = open_recorded(source)
    rows: list[dict[str, Any]] = []
    by_split: dict[str, dict[tuple[str, str], Result]] = {}
    files: dict[tuple[str, str], str] = {}
    for entry in run.entries:
        data = read_entry(source / entry.file)
        missing = [layer for layer in run.layers if layer not in data.layers]
        if missing:
            raise DataError(f"recorded entry {entry.file} lacks layers {missing[:3]}.")
        files[(entry.split, entry.label)] = str(source / entry.file)
        where = (run.name, entry.label, entry.step, entry.step)
        for layer in run.layers:
            result = layer_result(data.layers[layer], run, **metric_options)
            by_split.setdefault(entry.split, {})[(entry.label, layer)] = result
            rows += _rows(result, *where, layer, entry.split)
        for key, state in data.layers.items():
            layer, group = split_group_key(key)
            if group is not None and layer in run.layers:
                result = group_layer_result(state, run, **metric_options)
                by_split[entry.split][(entry.label, key)] = result
                rows += [{**row, "group": group} for row in _rows(result, *where, layer,
                                                                    entry.split)]  # fmt: skip
        rows += [
            {"run": run.name, "checkpoint": entry.label, "epoch": entry.step, "step": entry.step,
             "layer": layer, "split": entry.split, "metric": key, "value": value}
            for layer, values in entry.extra.items()
            for key, value in values.items()
        ]  # fmt: skip
    plain_rows = [r for r in rows if "group" not in r]
    group_rows = [r for r in rows if "group" in r]
    split_groups: dict[str, dict[tuple[str, str], GroupResult]] = {}
    for split in list(by_split):
        by_split[split], split_groups[split] = _assemble_groups(by_split[split])
        group_rows += _cross_group_rows(
            split_groups[split], [r for r in plain_rows if r["split"] == split]
        )
    rows = plain_rows
    splits = run.splits
    shown = "train" if "train" in splits else splits[0]
    log = dict(run.log)
    if "step" in log:
        log["epoch"] = log.pop("step")
    return Analysis(
        run=run.name,
        table=_table(rows),
        results=by_split[shown],
        layers=list(run.layers),
        checkpoints=list(dict.fromkeys(e.label for e in run.entries)),
        task=run.task,
        log=log,
        source=str(source),
        split=shown,
        split_results=by_split,
        entry_files=files,
        events=run.events,
        group_table=_group_table(group_rows),
        group_results=split_groups.get(shown, {}),
        split_group_results={k: v for k, v in split_groups.items() if v},
    )


@dataclass(frozen=True)
class _CheckpointPlan:
    """What every checkpoint of one analysis shares."""

    spec: ModelSpec
    dataset: Dataset
    layers: list[str] | None
    task: str
    split: str
    run_name: str
    device: str | None
    options: ExtractOptions
    cache: ActivationCache | None
    metric_options: Mapping[str, Any]
    progress: ProgressFn | None
    count: int
    trust_remote_code: bool = False
    corpus: TokenCorpus | None = None  # next-token classes (task "language")
    feature_learning: tuple[str, ...] = ()  # "agop", "gc": rows of ncviz.feature_learning


def _checkpoint_progress(
    progress: ProgressFn | None, index: int, count: int, name: str
) -> ProgressFn | None:
    """Progress of checkpoint ``index`` of ``count`` as a share of the whole analysis."""
    if progress is None:
        return None

    def report(done: int, total: int, message: str) -> None:
        progress(index * total + done, count * total, f"{name} ({index + 1}/{count}): {message}")

    return report


def onnx_source(source: Path) -> tuple[Path, list[Path]] | None:
    """(graph, checkpoints) when ``source`` is an ONNX model: a ``.onnx`` file (its own
    weights), or a folder with one ``.onnx`` and checkpoints of its weights (a run), or a folder
    of ``.onnx`` files (one per checkpoint, ordered by step)."""
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


def _analyze_onnx(
    source: Path,
    data_spec: DataSpec,
    layers: list[str] | None,
    batch_size: int,
    progress: ProgressFn | None,
    metric_options: Mapping[str, Any],
    classifier: str | None,
) -> Analysis:
    """Every checkpoint of an ONNX source through ONNX Runtime, into the same statistics;
    ``classifier`` names the head module when the last linear layer is not it."""
    graph_path, checkpoints = onnx_source(source)
    dataset = load_dataset(data_spec)
    batches = _batches(dataset, batch_size)
    base = read_onnx(graph_path, classifier=classifier)
    rows: list[dict[str, Any]] = []
    results: dict[tuple[str, str], Result] = {}
    chosen = layers or base.default_layers()
    task = "classification" if dataset.labels is not None else "regression"
    run_name = source.stem if source.is_file() else source.name
    for index, path in enumerate(checkpoints):
        graph, epoch, step = _onnx_graph_at(base, checkpoints, path)
        runner = OnnxRunner(graph, chosen)
        head = None
        if graph.classifier is not None and graph.weight is not None:
            head = (graph.classifier, SimpleNamespace(weight=graph.weight, bias=graph.bias))

        report = _checkpoint_progress(progress, index, len(checkpoints), path.name)
        captured = capture_outputs(
            runner, batches, chosen, classifier=head, task=task,
            num_classes=dataset.num_classes if task == "classification" else None,
            min_count=metric_options.get("min_count"), sample_size=0, progress=report,
        )  # fmt: skip
        for layer, item in captured.layers.items():
            if task == "regression":
                result: Result = item.statistics.compute()
            else:
                result = item.statistics.compute(
                    classes=np.array(dataset.classes), **metric_options
                )
            results[(path.name, layer)] = result
            rows += _rows(result, run_name, path.name, epoch, step, layer, data_spec.split_label)
    return Analysis(
        run=run_name,
        table=_table(rows),
        results=results,
        layers=list(chosen),
        checkpoints=[p.name for p in checkpoints],
        task=task,
        source=str(source),
        data=data_spec.to_dict(),
        model={"name": "onnx", "kwargs": {"graph": graph_path.name}},
    )


def _onnx_graph_at(
    base: OnnxGraph, checkpoints: list[Path], path: Path
) -> tuple[OnnxGraph, Any, Any]:
    """The graph of one checkpoint of an ONNX source (``base``: the source's graph, read once),
    with its epoch and step."""
    if path.suffix.lower() == ".onnx":
        graph = base if path == base.path else read_onnx(path, classifier=base.classifier)
        number = number_from_name(path.name) if len(checkpoints) > 1 else None
        return graph, number, number
    state = read_checkpoint(path)
    return with_weights(base, state.state_dict, path.name), state.epoch, state.step


def _onnx_layer_features(
    analysis: Analysis, checkpoint: str, layer: str, progress: ProgressFn | None
) -> tuple[np.ndarray, np.ndarray]:
    """Every sample's features of one layer of an ONNX checkpoint (a 'sample' of all rows)."""
    graph_path, checkpoints = onnx_source(Path(analysis.source))
    path = next(p for p in checkpoints if p.name == checkpoint)
    graph, _, _ = _onnx_graph_at(read_onnx(graph_path), checkpoints, path)
    dataset = load_dataset(DataSpec.parse(analysis.data))
    captured = capture_outputs(
        OnnxRunner(graph, [layer]), _batches(dataset, 256), [layer],
        num_classes=dataset.num_classes if dataset.labels is not None else None,
        sample_size=len(dataset), progress=progress,
    )  # fmt: skip
    labels = captured.sample_labels
    if dataset.labels is not None:
        labels = np.asarray(dataset.classes)[labels]
    else:
        labels = labels.reshape(len(labels), -1)[:, 0]
    return captured.layers[layer].sample, labels


def _batches(dataset: Dataset, size: int) -> list[tuple[Any, Any]]:
    """(inputs, labels or targets) in batches of ``size``."""
    answers = dataset.labels if dataset.labels is not None else dataset.targets
    return [
        (dataset.inputs[k : k + size], answers[k : k + size]) for k in range(0, len(dataset), size)
    ]


def load_exported_program(path: Path) -> tuple[Any, str]:
    """A trusted ``torch.export`` archive as a module with the original module names (after
    ``torch.export.unflatten``) and the name of its head: the last module with a 2-D weight.
    Loading runs code from the file: only for the operator's own files (``--trust``)."""
    try:
        net = torch.export.unflatten(torch.export.load(str(path)))
    except Exception as error:
        raise CheckpointError(
            f"{path.name} is not a loadable torch.export archive "
            f"({str(error).splitlines()[0][:120]})."
        ) from None
    heads = [n for n, m in net.named_modules() if getattr(m, "weight", None) is not None
             and m.weight.ndim == 2]  # fmt: skip
    return net, heads[-1] if heads else ""


def _analyze_exported(
    path: Path,
    data_spec: DataSpec,
    model: ModelSpec | Mapping[str, Any] | str | None,
    layers: list[str] | None,
    device: str | None,
    options: ExtractOptions,
    progress: ProgressFn | None,
    metric_options: Mapping[str, Any],
) -> Analysis:
    """A trusted ``.pt2`` through the same hooks and statistics as any checkpoint."""
    net, head = load_exported_program(path)
    head = (ModelSpec.parse(model).classifier if model else None) or head
    modules = dict(net.named_modules())
    if head and head not in modules:
        raise OptionError(f"{path.name} has no module {head!r} to use as the classifier.")
    dataset = load_dataset(data_spec)
    chosen = layers or [
        *(n for n, _ in net.named_children() if n != head),
        *([head + INPUT_SUFFIX] if head else []),
    ]
    extracted = extract(
        net, dataset, chosen, classifier=(head, modules[head]) if head else None, device=device,
        options=options, progress=progress, keep_features=dataset.labels is None,
    )  # fmt: skip
    rows: list[dict[str, Any]] = []
    results: dict[tuple[str, str], Result] = {}
    for layer, item in extracted.items():
        head_module = modules[head] if head and layer == head + INPUT_SUFFIX else None
        result = _extracted_result(item, dataset, head_module, metric_options)
        results[(path.name, layer)] = result
        rows += _rows(result, path.stem, path.name, None, None, layer, data_spec.split_label)
    return Analysis(
        run=path.stem, table=_table(rows), results=results, layers=list(chosen),
        checkpoints=[path.name], task="classification" if dataset.labels is not None
        else "regression", source=str(path), data=data_spec.to_dict(),
        model={"name": "pt2", "kwargs": {"file": path.name}},
    )  # fmt: skip


def _extracted_result(
    item: LayerFeatures, dataset: Dataset, head: Any, metric_options: Mapping[str, Any]
) -> Result:
    """One extracted layer's metrics: collapse from its statistics, or NRC from its features
    for regression data (``head``: the module reading this layer, whose W NRC needs)."""
    if dataset.labels is None:
        weight = None if head is None else head.weight.detach()
        return regression_result(item.features, dataset.targets, weight)
    return item.statistics.compute(classes=np.array(dataset.classes), **metric_options)


def _grouped_checkpoint(
    net: torch.nn.Module,
    head: tuple[str, Any],
    layers: list[str],
    plan: _CheckpointPlan,
    where: tuple[Any, ...],
    progress: ProgressFn | None,
) -> tuple[list[dict[str, Any]], dict[str, Result]]:
    """One checkpoint on data with groups: the dataset streamed as batches (x, y, group) through
    :func:`ncviz.extract.loader.capture`, so every group gets its own exact statistics beside
    the pooled ones without holding any layer's N×d features."""
    from ncviz.extract.extractor import best_device
    from ncviz.extract.loader import capture

    dataset, size = plan.dataset, plan.options.batch_size
    net = net.to(best_device(plan.device))
    batches = [(dataset.inputs[k : k + size], dataset.labels[k : k + size],
                dataset.groups[k : k + size]) for k in range(0, len(dataset), size)]  # fmt: skip
    options = dict(plan.metric_options)
    captured = capture(
        net, batches, list(layers), classifier=head, task="classification",
        num_classes=dataset.num_classes, min_count=options.get("min_count"), sample_size=0,
        options=plan.options, progress=progress, groups=True,
    )  # fmt: skip
    classes = np.array(dataset.classes)
    rows: list[dict[str, Any]] = []
    results: dict[str, Result] = {}
    for layer, item in captured.layers.items():
        results[layer] = item.statistics.compute(classes=classes, **options)
        rows += _rows(results[layer], *where, layer, plan.split)
    options.pop("min_count", None)  # a group's own (at least 2) was fixed when it was created
    for group, per_layer in captured.groups.items():
        for layer, statistics in per_layer.items():
            result = statistics.compute(classes=classes, **options)
            results[group_key(layer, group)] = result
            rows += [{**row, "group": group} for row in _rows(result, *where, layer, plan.split)]
    return rows, results


def _analyze_checkpoint(
    path: Path, index: int, plan: _CheckpointPlan
) -> tuple[list[dict[str, Any]], dict[str, Result]]:
    """Load one checkpoint, extract its layers and compute every metric."""
    spec, dataset, task, progress = plan.spec, plan.dataset, plan.task, plan.progress
    checkpoint = read_checkpoint(path)
    net = build_model(spec, trust_remote_code=plan.trust_remote_code)
    load_weights(net, checkpoint.state_dict, source=path.name)
    clf_name, clf = classifier_module(net, spec.classifier)
    chosen = plan.layers or default_layers(net, clf_name, dataset.inputs[:2])

    report = _checkpoint_progress(progress, index, plan.count, path.name)
    where = (plan.run_name, path.name, checkpoint.epoch, checkpoint.step)
    if dataset.groups is not None and dataset.labels is not None:
        rows, results = _grouped_checkpoint(net, (clf_name, clf), chosen, plan, where, report)
    else:
        extracted = extract(
            net, dataset, chosen, classifier=(clf_name, clf), device=plan.device,
            options=plan.options, cache=plan.cache, checkpoint_id=checkpoint.sha256,
            progress=report, keep_features=task == "regression",
        )  # fmt: skip
        rows, results = [], {}
        for layer, features in extracted.items():
            head = clf if layer == clf_name + INPUT_SUFFIX else None
            results[layer] = _extracted_result(features, dataset, head, plan.metric_options)
            rows += _rows(results[layer], *where, layer, plan.split)
    if plan.feature_learning and dataset.labels is not None:
        measured = feature_learning_rows(
            net, dataset.inputs, dataset.labels, clf_name, plan.feature_learning
        )
        rows += [
            {"run": plan.run_name, "checkpoint": path.name, "epoch": checkpoint.epoch,
             "step": checkpoint.step, "layer": layer, "split": plan.split, "metric": key,
             "value": float(value)}
            for layer, values in measured.items()
            for key, value in values.items()
        ]  # fmt: skip
    return rows, results


def _analyze_language_checkpoint(
    path: Path, index: int, plan: _CheckpointPlan
) -> tuple[list[dict[str, Any]], dict[str, Result]]:
    """One checkpoint of a causal LM: next-token classes at each layer (ncviz.language)."""
    checkpoint = read_checkpoint(path)
    net = build_model(plan.spec, trust_remote_code=plan.trust_remote_code)
    load_weights(net, checkpoint.state_dict, source=path.name)
    head_name, head = lm_head(net, plan.spec.classifier)
    chosen = plan.layers or token_layers(net, head_name)
    statistics = token_statistics(
        net, plan.corpus, chosen, (head_name, head), device=plan.device or "auto",
        batch_size=max(1, plan.options.batch_size // 8), min_count=plan.options.min_count,
        progress=_checkpoint_progress(plan.progress, index, plan.count, path.name),
    )  # fmt: skip
    names = class_names(plan.corpus, head.weight.shape[0])
    # an LM is checkpointed by optimiser step: the step is its position on the training axis
    epoch = checkpoint.epoch if checkpoint.epoch is not None else checkpoint.step
    rows: list[dict[str, Any]] = []
    results: dict[str, Result] = {}
    for layer in chosen:
        result = statistics[layer].compute(classes=names, **plan.metric_options)
        results[layer] = result
        rows += _rows(result, plan.run_name, path.name, epoch, checkpoint.step, layer, plan.split)
    return rows, results


def analyze(
    source: str | Path,
    data: DataSpec | Mapping[str, Any] | str | None = None,
    *,
    model: ModelSpec | Mapping[str, Any] | str | None = None,
    layers: list[str] | None = None,
    device: str | None = None,
    batch_size: int = 256,
    pool: str = "auto",
    autocast: bool = False,
    cache: ActivationCache | bool | None = True,
    progress: ProgressFn | None = None,
    checkpoint_filter: Callable[[Path], bool] | None = None,
    trust_remote_code: bool = False,
    confine_to: str | Path | None = None,
    language: bool = False,
    feature_learning: tuple[str, ...] | list[str] = (),
    **metric_options: Any,
) -> Analysis:
    """Metrics of every checkpoint of a run (or one checkpoint, or a features file).

    Args:
        source: a run folder (``run.json`` supplies model and data unless given here), a
            checkpoint file, or a features file (``features.<layer>`` + labels/targets).
        data: data spec (see :mod:`ncviz.load.datasets`), e.g. ``"builtin:digits?split=test"``.
        model: model spec (see :mod:`ncviz.load.architectures`).
        layers: layer names (see ``ncviz layers``); default: every top-level block output and
            the classifier input.
        device: "cuda", "cpu" or None (CUDA when available).
        cache: True = the default activation cache, an :class:`ActivationCache`, or False.
        progress: ``progress(done, total, message)`` after every batch; raise to cancel.
        trust_remote_code: let a model spec's ``trust_remote_code`` run code from its files
            (your own machine only; the dashboard never sets it).
        confine_to: a folder that every file read must resolve inside (the shared server's data
            folder): the source, each file of a run folder, and a data file.
        language: next-token classes of a causal LM over a token corpus (:mod:`ncviz.language`;
            also chosen by a run's task "language" or a .txt/.jsonl corpus); ``batch_size``/8
            sequences per batch, ``min_count`` 2 unless given.
        feature_learning: ``"agop"`` and/or ``"gc"``: add the rows of
            :func:`ncviz.feature_learning.feature_learning_rows` (NFA correlation and stage NC1
            per linear layer; geometric complexity and collapse at the classifier input) — for
            checkpoints with a model and labelled data.
        metric_options: options of the collapse metrics (``global_mean``, ``tau``, …).
    """
    source = Path(source)
    feature_learning = tuple(feature_learning)
    if not source.exists():
        raise DataError(f"{source.name} does not exist.")
    if confine_to is not None:
        check_inside(Path(confine_to), source)
    if source.is_file() and is_features_file(source):
        return _analyze_features_files([source], source.stem, source, metric_options)
    if source.is_dir() and is_recorded_run(source):
        return _analyze_recorded(source, metric_options)
    if source.is_dir() and (feature_files := features_folder(source)):
        return _analyze_features_files(feature_files, source.name, source, metric_options)
    if source.suffix.lower() == ".pt2" and trust_remote_code:
        if data is None:
            raise OptionError("a .pt2 model needs data: pass --data (a data spec or file).")
        return _analyze_exported(source, DataSpec.parse(data), model, layers, device,
                                 ExtractOptions(batch_size=batch_size, pool=pool,
                                                min_count=metric_options.get("min_count")),
                                 progress,
                                 metric_options)  # fmt: skip
    if onnx_source(source) is not None:
        if data is None:
            raise OptionError("an ONNX model needs data: pass --data (a data spec or file).")
        head = ModelSpec.parse(model).classifier if model else None
        return _analyze_onnx(source, DataSpec.parse(data), layers, batch_size, progress,
                             metric_options, head)  # fmt: skip

    task, run_name, log = "classification", source.stem, {}
    events: list[dict[str, Any]] = []
    if source.is_dir():
        if not is_run(source):
            raise DataError(
                f"{source.name} is not a run folder (no run.json, checkpoints, recorded entries "
                "or features files)."
            )
        run = open_run(source)
        checkpoints, run_name, task, log = run.checkpoints, run.name, run.task, dict(run.log)
        events = run_events(run.raw)
        if "step" in log and "epoch" not in log:  # a log per optimiser step (the LM demo)
            log["epoch"] = log.pop("step")
        model = model or run.model
        data = data or run.data
        metric_options = {**run.raw.get("metric_options", {}), **metric_options}
    elif source.suffix.lower() in (*CHECKPOINT_SUFFIXES, ".pt2"):
        checkpoints = [source]  # read_checkpoint explains why a .pt2 is refused
    else:
        raise DataError(
            f"{source.name} is neither a run folder, a checkpoint (.safetensors/.pt/.pth) nor a "
            "features file."
        )
    if checkpoint_filter is not None:
        checkpoints = [c for c in checkpoints if checkpoint_filter(c)]
    if model is None:
        raise OptionError('no model spec: pass --model (or put "model" in the run\'s run.json).')
    if data is None:
        raise OptionError('no data spec: pass --data (or put "data" in the run\'s run.json).')
    spec = ModelSpec.parse(model)
    data_spec = DataSpec.parse(data)
    if language or is_token_corpus(data_spec):
        task = "language"
    if task == "language":
        metric_options = {"min_count": DEFAULT_MIN_COUNT, **metric_options}
        data_spec = replace(data_spec, source=str(_run_relative(data_spec.source, source)))
    if confine_to is not None and not data_spec.source.startswith("builtin:"):
        data_file = Path(data_spec.source)
        if not data_file.is_absolute():  # a run's own data, relative to the run folder
            data_file = (source if source.is_dir() else source.parent) / data_file
        if not data_file.exists():
            raise DataError(f"the data file {data_file.name} does not exist in the data folder.")
        check_inside(Path(confine_to), data_file)
    cache_obj = ActivationCache() if cache is True else (cache or None)
    # finished results are cached per process only: under torchrun every rank must take part in
    # every all-reduce, so no rank may skip a checkpoint because of its own cache
    distributed = world()[1] > 1
    result_cache = ResultCache(cache_obj.store) if cache_obj and not distributed else None
    options = ExtractOptions(
        batch_size=batch_size, pool=pool, autocast=autocast,
        min_count=metric_options.get("min_count"),
    )  # fmt: skip
    data_identity: dict[str, Any] = data_spec.to_dict()
    if not data_spec.source.startswith("builtin:"):
        data_identity["file"] = checkpoint_stamp(Path(data_spec.source))
    dataset = None
    corpus = None

    rows: list[dict[str, Any]] = []
    results: dict[tuple[str, str], Result] = {}
    chosen_layers: list[str] = []
    for index, path in enumerate(checkpoints):
        key = results_key(
            checkpoint=checkpoint_stamp(path), data=data_identity, model=spec.to_dict(),
            layers=layers, task=task, pool=pool, autocast=autocast, options=metric_options,
            **({"feature_learning": feature_learning} if feature_learning else {}),
        )  # fmt: skip
        hit = result_cache.get(key) if result_cache is not None else None
        if hit is None and task == "language":
            if corpus is None:
                corpus_file = Path(data_spec.source)
                corpus = read_corpus(data_spec, find_tokenizer(corpus_file, spec.name))
            plan = _CheckpointPlan(
                spec, None, layers, task, data_spec.split_label, run_name, device, options,
                None, metric_options, progress, len(checkpoints), trust_remote_code, corpus,
            )  # fmt: skip
            new_rows, layer_results = _analyze_language_checkpoint(path, index, plan)
            if result_cache is not None:
                result_cache.put(key, new_rows, layer_results)
        elif hit is None:
            if dataset is None:
                dataset = load_dataset(data_spec)
                if task == "classification" and dataset.labels is None:
                    task = "regression"
            plan = _CheckpointPlan(
                spec, dataset, layers, task, data_spec.split_label, run_name, device, options,
                cache_obj, metric_options, progress, len(checkpoints), trust_remote_code,
                feature_learning=feature_learning,
            )  # fmt: skip
            new_rows, layer_results = _analyze_checkpoint(path, index, plan)
            if result_cache is not None:
                result_cache.put(key, new_rows, layer_results)
        else:
            new_rows, layer_results = hit
            if progress is not None:
                progress(index + 1, len(checkpoints), f"{path.name}: cached")
        rows += new_rows
        results.update({(path.name, layer): result for layer, result in layer_results.items()})
        chosen_layers = list(layer_results)
        task = (
            "regression"
            if isinstance(next(iter(layer_results.values())), RegressionResult)
            else task
        )
    rows, group_rows, results, group_results = _with_groups(rows, results)
    return Analysis(
        run=run_name,
        table=_table(rows),
        results=results,
        layers=[layer for layer in chosen_layers if split_group_key(layer)[1] is None],
        checkpoints=[p.name for p in checkpoints],
        task=task,
        log=log,
        source=str(source),
        data=data_spec.to_dict(),
        model=spec.to_dict(),
        events=events,
        group_table=_group_table(group_rows),
        group_results=group_results,
        split_group_results={data_spec.split_label: group_results} if group_results else {},
    )


def _run_relative(data: str, source: Path) -> Path:
    """A data path as given, or else relative to the run folder (a run ships its corpus)."""
    path = Path(data)
    if path.is_absolute() or path.exists():
        return path
    return (source if source.is_dir() else source.parent) / path


def ranks_at(analysis: Analysis, tau: float) -> pd.DataFrame:
    """The numerical rank of the class means (s_k > τ·s_1) of every analysed checkpoint and
    layer, as tidy rows (metric ``rank_means``) — for a τ other than the analysis's own."""
    from ncviz.metrics.spectra import numerical_rank

    epochs = dict(zip(analysis.checkpoints, analysis.epochs()))
    rows = [
        {"run": analysis.run, "checkpoint": checkpoint, "epoch": epochs.get(checkpoint),
         "step": None, "layer": layer, "split": analysis.split, "metric": "rank_means",
         "value": float(numerical_rank(torch.as_tensor(result.arrays["sv_means"]), tau))}
        for (checkpoint, layer), result in analysis.results.items()
        if isinstance(result, CollapseResult) and "sv_means" in result.arrays
    ]  # fmt: skip
    return _table(rows)


def training_counts(analysis: Analysis) -> dict[str, int] | None:
    """Samples per class of the data the run was trained on (run.json ``train_data``), by class
    name — beside the counts of the analysed split, which may be balanced; None if unknown."""
    source = Path(analysis.source)
    if not (source.is_dir() and is_run(source)):
        return None
    spec = open_run(source).raw.get("train_data")
    if not spec:
        return None
    try:
        data = load_dataset(DataSpec.parse(spec))
    except (DataError, OSError):
        return None
    if data.labels is None:
        return None
    counts = torch.bincount(data.labels, minlength=len(data.classes)).tolist()
    return dict(zip(data.classes, counts))


def _checkpoint_path(analysis: Analysis, checkpoint: str) -> Path:
    source = Path(analysis.source)
    return source / checkpoint if source.is_dir() else source


def _trained_model(analysis: Analysis, checkpoint: str) -> tuple[torch.nn.Module, Any]:
    """The analysis's architecture with one checkpoint's weights loaded, and that checkpoint."""
    path = _checkpoint_path(analysis, checkpoint)
    state = read_checkpoint(path)
    net = build_model(ModelSpec.parse(analysis.model))
    load_weights(net, state.state_dict, source=path.name)
    return net, state


def groups_against_head(analysis: Analysis, checkpoint: str, layer: str) -> GroupResult | None:
    """The groups of one checkpoint and layer with ``etf_alignment`` measured against the
    classifier's rows W (a fixed ETF head's own simplex) instead of the best-fit ETF; None when
    the layer has no groups or no classifier."""
    grouped = analysis.group_results.get((checkpoint, layer))
    pooled = analysis.results.get((checkpoint, layer))
    if grouped is None or not isinstance(pooled, CollapseResult):
        return None
    if "class_weight" not in pooled.arrays:
        return None
    return assemble_groups(
        grouped.results, grouped.groups, np.asarray(pooled.classes),
        etf=pooled.arrays["class_weight"],
    )  # fmt: skip


def given_centres(analysis: Analysis) -> np.ndarray | None:
    """The fixed multi-centre targets (C×f×d) a run was trained with — run.json ``centres``
    names a ``.npy`` in the run folder (the NCMC demo) — or None."""
    source = Path(analysis.source)
    if not (source.is_dir() and is_run(source)):
        return None
    name = open_run(source).raw.get("centres")
    if not name:
        return None
    path = source / Path(str(name)).name  # never outside the run folder
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DataError(f"{path.name}: the run's centres cannot be read ({error}).") from None


def multicentre_at(
    analysis: Analysis,
    checkpoint: str,
    layer: str,
    *,
    max_centres: int = 5,
    use_given: bool = False,
    progress: ProgressFn | None = None,
) -> Any:
    """Multi-centre collapse (:func:`ncviz.metrics.multicentre.multicentre_result`) of one
    analysed checkpoint and layer, on its features (a recorded run: its sample): centres by
    k-means with k ≤ ``max_centres`` chosen by silhouette, or the run's own fixed targets
    (``use_given``, for the classifier input)."""
    from ncviz.metrics.multicentre import multicentre_result

    features, labels = layer_features(analysis, checkpoint, layer, progress=progress)
    centres = given_centres(analysis) if use_given else None
    if use_given and centres is None:
        raise OptionError("this run has no fixed centres (run.json 'centres'); use k-means.")
    return multicentre_result(features, labels, centres=centres, max_centres=max_centres)


def with_multicentre(
    analysis: Analysis,
    max_centres: int = 5,
    layer: str | None = None,
    progress: ProgressFn | None = None,
) -> Analysis:
    """The analysis with the multi-centre rows (``mc_nc_ave``, ``mc_nc_std``, ``mc_alignment``,
    ``mc_centres``) of every checkpoint at ``layer`` (default: the last, the classifier input)
    added to its table — the run's own fixed centres when it has them (NCMC), else per-class
    k-means with k ≤ ``max_centres`` (``ncviz analyze --multicentre K``)."""
    layer = layer or analysis.layers[-1]
    use_given = given_centres(analysis) is not None and layer.endswith(INPUT_SUFFIX)
    epochs = dict(zip(analysis.checkpoints, analysis.epochs()))
    steps = analysis.table.drop_duplicates("checkpoint").set_index("checkpoint")["step"]
    rows = []
    for index, checkpoint in enumerate(analysis.checkpoints):
        found = multicentre_at(analysis, checkpoint, layer, max_centres=max_centres,
                               use_given=use_given)  # fmt: skip
        rows += [
            {"run": analysis.run, "checkpoint": checkpoint, "epoch": epochs.get(checkpoint),
             "step": steps.get(checkpoint), "layer": layer, "split": analysis.split or
             analysis.table["split"].iloc[0], "metric": key, "value": value}
            for key, value in found.metrics.items()
        ]  # fmt: skip
        if progress is not None:
            progress(index + 1, len(analysis.checkpoints), f"{checkpoint}: multi-centre")
    table = pd.concat([analysis.table, _table(rows)], ignore_index=True)
    return replace(analysis, table=table)


def agop_at(analysis: Analysis, checkpoint: str, layer: str, max_samples: int = 1000) -> np.ndarray:
    """The AGOP (d_in × d_in) at the input of linear ``layer`` (``"<name>:input"``) of one
    analysed checkpoint, on the analysis's data (a seeded subset of ``max_samples``)."""
    from ncviz.feature_learning import agop

    path = _checkpoint_path(analysis, checkpoint)
    if analysis.model is None or analysis.data is None or not path.is_file():
        raise OptionError("the AGOP needs checkpoints with a model spec and data.")
    net, _ = _trained_model(analysis, checkpoint)
    inputs = load_dataset(DataSpec.parse(analysis.data)).inputs
    if len(inputs) > max_samples:
        inputs = inputs[np.sort(np.random.default_rng(0).choice(len(inputs), max_samples, False))]
    return agop(net, inputs, layer.removesuffix(INPUT_SUFFIX)).numpy()


def layer_features(
    analysis: Analysis,
    checkpoint: str,
    layer: str,
    *,
    device: str | None = None,
    cache: ActivationCache | bool = True,
    progress: ProgressFn | None = None,
    target: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The features (N×d) and labels (or regression target number ``target``) of one analysed
    checkpoint and layer, from the activation cache when present (e.g. for embeddings)."""
    source = Path(analysis.source)
    split = analysis.split or "train"
    if (split, checkpoint) in analysis.entry_files:
        return recorded_sample(Path(analysis.entry_files[(split, checkpoint)]), layer, target)
    if onnx_source(source) is not None:
        return _onnx_layer_features(analysis, checkpoint, layer, progress)
    path = _checkpoint_path(analysis, checkpoint)
    if is_features_file(path):
        features = read_features_file(path)
        labels = features.labels if features.labels is not None else features.targets[:, target]
        return features.layers[layer].numpy(), np.asarray(labels)
    spec = ModelSpec.parse(analysis.model)
    if analysis.task == "language":
        data_spec = DataSpec.parse(analysis.data)
        corpus = read_corpus(data_spec, find_tokenizer(Path(data_spec.source), spec.name))
        net, _ = _trained_model(analysis, checkpoint)
        _, head = lm_head(net, spec.classifier)
        features, ids = token_features(net, corpus, layer, device=device or "auto")
        return features, class_names(corpus, head.weight.shape[0])[ids]
    dataset = load_dataset(DataSpec.parse(analysis.data))
    net, state = _trained_model(analysis, checkpoint)
    cache_obj = ActivationCache() if cache is True else (cache or None)
    extracted = extract(
        net, dataset, [layer], device=device, cache=cache_obj, checkpoint_id=state.sha256,
        keep_features=True, progress=progress,
    )  # fmt: skip
    if dataset.labels is not None:
        labels = np.asarray(dataset.classes)[dataset.labels.numpy()]
    else:
        labels = dataset.targets[:, target].numpy()
    return extracted[layer].features, labels


def hookable_layers(
    model: ModelSpec | Mapping[str, Any] | str | None,
    data: DataSpec | Mapping[str, Any] | str,
    source: str | Path | None = None,
) -> tuple[list[LayerInfo], list[str]]:
    """Every hookable layer of an (untrained) model with its output shape on this data, and the
    layers analysed by default — for choosing layers before any checkpoint is loaded. An ONNX
    ``source`` lists its graph's layers instead (the model spec is then not needed)."""
    if source is not None and (found := onnx_source(Path(source))) is not None:
        graph = read_onnx(found[0])
        sample = load_dataset(data).inputs[:2]
        outputs = OnnxRunner(graph, graph.layers)(sample)
        infos = [LayerInfo(name, "onnx", tuple(v.shape[1:])) for name, v in outputs.items()]
        return infos, graph.default_layers()
    spec = ModelSpec.parse(model)
    net = build_model(spec)
    sample = load_dataset(data).inputs[:2]
    clf_name, _ = classifier_module(net, spec.classifier)
    try:
        infos = list_layers(net, sample)
    except RuntimeError as error:
        raise DataError(
            f"the data do not fit model {spec.name!r} ({str(error).splitlines()[0][:120]}); "
            "check the architecture arguments (e.g. in_features) and the data shape."
        ) from None
    return infos, default_layers(net, clf_name, sample)
