"""Checkpoints with a model spec: a run folder (``run.json`` + checkpoints ordered by epoch/step)
or one checkpoint file, measured on a data spec through forward hooks (:func:`ncviz.extract`).

Finished checkpoints are kept in the result cache, keyed by the checkpoint's content, the data,
the model spec, the layers and every option, so reopening a run is instant.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from ncviz.analysis.groups import GroupParts, ResultKey, split_groups
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
from ncviz.cache import ActivationCache, ResultCache, checkpoint_stamp, results_key
from ncviz.distributed import world
from ncviz.errors import DataError, OptionError
from ncviz.extract import (
    INPUT_SUFFIX,
    LayerFeatures,
    LayerInfo,
    default_layers,
    extract,
    list_layers,
)
from ncviz.feature_learning import feature_learning_rows
from ncviz.load import (
    Dataset,
    DataSpec,
    ModelSpec,
    build_model,
    classifier_module,
    load_dataset,
    load_weights,
    read_checkpoint,
)
from ncviz.load.checkpoints import CHECKPOINT_SUFFIXES
from ncviz.load.runs import Task, is_run, open_run, run_events
from ncviz.load.server_folder import check_inside
from ncviz.metrics import CollapseOptions, CollapseResult, RegressionResult, regression_result
from ncviz.metrics.ood import ood_mean, orthogonality_deviation
from ncviz.metrics.threads import full_threads, single_threaded
from ncviz.sources.base import ProgressFn, Source, checkpoint_progress


@dataclass
class Measuring:
    """What the checkpoints of one analysis share while it runs (data read once)."""

    options: AnalysisOptions
    progress: ProgressFn | None
    count: int
    task: Task
    loaded: Any = None  # the dataset (or a language source's corpus), read on first need
    ood: Any = None  # the out-of-distribution data (options.ood), unlabelled, read on first need


@dataclass(frozen=True)
class CheckpointsSource(Source):
    """A run folder or one checkpoint, with the model and data it is measured with."""

    kind: ClassVar[str] = "checkpoints"
    path: Path
    run_name: str
    checkpoints: tuple[Path, ...]
    model: ModelSpec
    data: DataSpec
    task: Task = "classification"
    log: dict[str, list[Any]] = field(default_factory=dict, hash=False)
    events: tuple[dict[str, Any], ...] = ()
    run_file: dict[str, Any] = field(default_factory=dict, hash=False)  # run.json as read
    metrics: dict[str, Any] = field(default_factory=dict, hash=False)  # run.json's options
    train_data: DataSpec | None = None  # what the run was trained on (found like ``data``)

    @classmethod
    def detect(cls, path: Path, options: AnalysisOptions) -> CheckpointsSource | None:
        fields = checkpoint_fields(path, options)
        return None if fields is None else cls(**fields)

    # --- analysis -------------------------------------------------------------------------

    def analyze(self, options: AnalysisOptions, progress: ProgressFn | None = None) -> Analysis:
        options = options.with_run_metrics(self.metrics)
        checkpoints = [
            c
            for c in self.checkpoints
            if options.checkpoint_filter is None or options.checkpoint_filter(c)
        ]
        # finished results are cached per process only: under torchrun every rank must take
        # part in every all-reduce, so no rank may skip a checkpoint because of its own cache
        distributed = world()[1] > 1
        cache = options.cache
        result_cache = ResultCache(cache.store) if cache and not distributed else None
        data_identity: dict[str, Any] = self.data.to_dict()
        if not self.data.source.startswith("builtin:"):
            data_identity["file"] = checkpoint_stamp(Path(self.data.source))
        state = Measuring(options, progress, len(checkpoints), self.task)
        rows: list[dict[str, Any]] = []
        results: dict[ResultKey, Result] = {}
        parts: GroupParts = {}
        chosen_layers: list[str] = []
        for index, path in enumerate(checkpoints):
            key = results_key(
                checkpoint=checkpoint_stamp(path),
                data=data_identity,
                model=self.model.to_dict(),
                layers=list(options.layers) if options.layers else None,
                task=state.task,
                pool=options.extract.pool,
                autocast=options.extract.autocast,
                options=options.metrics.changes(),
                **({"ood": options.ood.to_dict()} if options.ood is not None else {}),
                **(
                    {"feature_learning": options.feature_learning}
                    if options.feature_learning
                    else {}
                ),
            )
            hit = result_cache.get(key) if result_cache is not None else None
            if hit is None:
                # glue ops on one thread (a busy machine makes every small parallel op wait for
                # a late thread); forward passes, statistics and solvers of real size take the
                # caller's threads back (ncviz.metrics.threads)
                with single_threaded():
                    measured = self.measure(path, index, state)
                if result_cache is not None:
                    result_cache.put(key, measured.rows, measured.results, measured.groups)
            else:
                measured = Measured(*hit)
                if progress is not None:
                    progress(index + 1, len(checkpoints), f"{path.name}: cached")
            measured.fold_into(path.name, rows, results, parts)
            chosen_layers = list(measured.results)
            if isinstance(next(iter(measured.results.values())), RegressionResult):
                state.task = "regression"
        rows, group_rows, group_results = split_groups(rows, results, parts)
        split = self.data.split_label
        return Analysis(
            run=self.run_name,
            table=make_table(rows),
            results=results,
            layers=chosen_layers,
            checkpoints=[p.name for p in checkpoints],
            task=state.task,
            log=dict(self.log),
            source=str(self.path),
            data=self.data.to_dict(),
            model=self.model.to_dict(),
            events=list(self.events),
            group_table=make_group_table(group_rows),
            group_results=group_results,
            split_group_results={split: group_results} if group_results else {},
            origin=self,
        )

    def dataset(self, state: Measuring) -> Dataset:
        """The analysed data, read once per analysis (unlabelled data make it a regression)."""
        if state.loaded is None:
            state.loaded = load_dataset(self.data)
            if state.task == "classification" and state.loaded.labels is None:
                state.task = "regression"
        return state.loaded

    def measure(self, path: Path, index: int, state: Measuring) -> Measured:
        """Load one checkpoint, extract its layers and compute every metric."""
        dataset, options = self.dataset(state), state.options
        checkpoint = read_checkpoint(path)
        net = build_model(self.model, trust_remote_code=options.trust_remote_code)
        load_weights(net, checkpoint.state_dict, source=path.name)
        clf_name, clf = classifier_module(net, self.model.classifier)
        chosen = list(options.layers or default_layers(net, clf_name, dataset.inputs[:2]))
        report = checkpoint_progress(state.progress, index, state.count, path.name)
        key = RowKey(
            self.run_name, path.name, checkpoint.epoch, checkpoint.step, self.data.split_label
        )
        extracted = extract(
            net,
            dataset,
            chosen,
            classifier=(clf_name, clf),
            device=options.device,
            options=options.extract,
            cache=options.cache,
            checkpoint_id=checkpoint.sha256,
            progress=report,
            keep_features=state.task == "regression",
        )
        measured = Measured()
        # a group's own min_count (at least 2) was fixed when its statistics were created
        per_group = replace(options.metrics, min_count=None)
        classes = np.array(dataset.classes)
        for layer, features in extracted.items():
            head = clf if layer == clf_name + INPUT_SUFFIX else None
            result = extracted_result(features, dataset, head, options.metrics)
            measured.add(key, layer, result)
            for group, statistics in features.groups.items():
                result = statistics.compute(classes, per_group)
                measured.add_group(key, layer, group, result)
        if options.ood is not None and dataset.labels is not None:
            self._add_nc5(net, state, chosen, checkpoint.sha256, key, measured)
        if options.feature_learning and dataset.labels is not None:
            with full_threads():  # Jacobians of every sample: large work
                learned = feature_learning_rows(
                    net,
                    dataset.inputs,
                    dataset.labels,
                    clf_name,
                    options.feature_learning,
                    convention=options.metrics.convention,
                )
            for layer, values in learned.items():
                measured.rows += metric_rows(key, layer, values)
        return measured

    def _add_nc5(
        self,
        net: Any,
        state: Measuring,
        layers: list[str],
        checkpoint_id: str,
        key: RowKey,
        measured: Measured,
    ) -> None:
        """``nc5`` of every classification layer: the OOD data run through the same model."""
        options = state.options
        assert options.ood is not None
        if state.ood is None:
            data = load_dataset(options.ood)
            # unlabelled: only its features are read (any number of classes, or none)
            state.ood = replace(
                data, labels=None, targets=torch.zeros(len(data.inputs), 1), groups=None
            )
        extracted = extract(
            net,
            state.ood,
            layers,
            device=options.device,
            options=options.extract,
            cache=options.cache,
            checkpoint_id=checkpoint_id,
            keep_features=True,
            by_group=False,
        )
        for layer, features in extracted.items():
            result = measured.results.get(layer)
            if not isinstance(result, CollapseResult) or features.features is None:
                continue
            value = orthogonality_deviation(
                result.arrays["class_means"],
                ood_mean(features.features, features.features.shape[1]),
            )
            result.metrics["nc5"] = value
            measured.rows += metric_rows(key, layer, {"nc5": value})

    # --- follow-ups -----------------------------------------------------------------------

    def checkpoint_path(self, checkpoint: str) -> Path:
        path = next((p for p in self.checkpoints if p.name == checkpoint), None)
        if path is None:
            raise DataError(f"{checkpoint} is not a checkpoint of {self.run_name}.")
        return path

    def trained_model(self, checkpoint: str) -> tuple[torch.nn.Module, Any]:
        path = self.checkpoint_path(checkpoint)
        state = read_checkpoint(path)
        net = build_model(self.model)
        load_weights(net, state.state_dict, source=path.name)
        return net, state

    def inputs(self) -> Any:
        return load_dataset(self.data).inputs

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
        """Every sample's features of one layer, from the activation cache when present
        (``cache``)."""
        dataset = load_dataset(self.data)
        net, state = self.trained_model(checkpoint)
        extracted = extract(
            net,
            dataset,
            [layer],
            cache=ActivationCache() if cache else None,
            checkpoint_id=state.sha256,
            keep_features=True,
            progress=progress,
            by_group=False,
        )
        if dataset.labels is not None:
            labels = np.asarray(dataset.classes)[dataset.labels.numpy()]
        else:
            labels = dataset.answers[:, target].numpy()
        features = extracted[layer].features
        assert features is not None  # keep_features=True
        return features, labels

    def training_counts(self) -> dict[str, int] | None:
        """Samples per class of run.json's ``train_data`` (the run may be measured on balanced
        data), by class name; None if the run names none (or none found in its folder). A file
        that is there but cannot be read (a bomb refused, a wrong format) raises its one-line
        :class:`DataError`."""
        if self.train_data is None:
            return None
        try:
            data = load_dataset(self.train_data)
        except OSError as error:
            raise DataError(f"the training data cannot be read ({error}).") from None
        if data.labels is None:
            return None
        counts = torch.bincount(data.labels, minlength=len(data.classes)).tolist()
        return dict(zip(data.classes, counts))

    def has_given_centres(self) -> bool:
        return bool(self.run_file.get("centres"))

    def given_centres(self) -> np.ndarray | None:
        """The ``.npy`` of fixed centres that run.json ``centres`` names (the NCMC demo)."""
        name = self.run_file.get("centres")
        if not name:
            return None
        path = self.path / Path(str(name)).name  # never outside the run folder
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise DataError(f"{path.name}: the run's centres cannot be read ({error}).") from None


def checkpoint_fields(path: Path, options: AnalysisOptions) -> dict[str, Any] | None:
    """The fields of a checkpoints source at ``path`` (a run folder or a checkpoint file), with
    the model and data from ``options`` or else the run's ``run.json``; None for other files."""
    run_name = path.stem
    run_task: Task = "classification"
    log: dict[str, Any] = {}
    events: tuple[dict[str, Any], ...] = ()
    raw: dict[str, Any] = {}
    model, data = options.model, options.data
    if path.is_dir():
        if not is_run(path):
            raise DataError(
                f"{path.name} is not a run folder (no run.json, checkpoints, recorded entries "
                "or features files)."
            )
        run = open_run(path)
        checkpoints, run_name, run_task, log = run.checkpoints, run.name, run.task, dict(run.log)
        raw, events = run.raw, tuple(run_events(run.raw))
        if "step" in log and "epoch" not in log:  # a log per optimiser step (the LM demo)
            log["epoch"] = log.pop("step")
        model = model or run.model
        data = data or run.data
    elif path.suffix.lower() in (*CHECKPOINT_SUFFIXES, ".pt2"):
        checkpoints = [path]  # read_checkpoint explains why a .pt2 is refused
    else:
        return None
    if model is None:
        raise OptionError('no model spec: pass --model (or put "model" in the run\'s run.json).')
    if data is None:
        raise OptionError('no data spec: pass --data (or put "data" in the run\'s run.json).')
    folder = path if path.is_dir() else path.parent
    data = run_data(data, folder, options.confine_to)
    train_data = None
    if raw.get("train_data"):  # read for the training counts: the same rules as the data
        try:
            train_data = run_data(DataSpec.parse(raw["train_data"]), folder, options.confine_to)
        except DataError:
            train_data = None  # no training counts; the analysis goes on
    return {
        "path": path,
        "run_name": run_name,
        "checkpoints": tuple(checkpoints),
        "model": model,
        "data": data,
        "task": run_task,
        "log": log,
        "events": events,
        "run_file": raw,
        "metrics": dict(raw.get("metric_options", {})),
        "train_data": train_data,
    }


def run_data(data: DataSpec, folder: Path, confine_to: Path | None) -> DataSpec:
    """A data spec with its file found: as given (absolute, or relative to the working folder)
    or else relative to the run ``folder``; with ``confine_to`` (the shared server) always
    relative to the run folder and inside ``confine_to`` (no absolute path, ``..`` or link
    out of it), so an uploaded run.json cannot name a file of the server's."""
    if data.source.startswith("builtin:"):
        return data
    data_file = Path(data.source)
    if confine_to is not None or not (data_file.is_absolute() or data_file.exists()):
        data_file = folder / data_file  # a run's own data, relative to the run folder
    if not data_file.exists():
        where = " in the data folder" if confine_to is not None else ""
        raise DataError(f"the data file {data_file.name} does not exist{where}.")
    if confine_to is not None:
        check_inside(confine_to, data_file)
    return replace(data, source=str(data_file))


def extracted_result(
    item: LayerFeatures, dataset: Dataset, head: Any, metrics: CollapseOptions
) -> Result:
    """One extracted layer's metrics: collapse from its statistics, or NRC from its features
    for regression data (``head``: the module reading this layer, whose W NRC needs)."""
    if dataset.labels is None:
        weight = None if head is None else head.weight.detach()
        bias = None if head is None or getattr(head, "bias", None) is None else head.bias.detach()
        assert item.features is not None  # kept for regression data
        return regression_result(
            item.features, dataset.answers, weight, bias=bias, convention=metrics.convention
        )
    assert item.statistics is not None  # both passes done for labelled data
    return item.statistics.compute(np.array(dataset.classes), metrics)


def hookable_layers(model: ModelSpec, data: DataSpec) -> tuple[list[LayerInfo], list[str]]:
    """Every hookable layer of an (untrained) model with its output shape on two samples of
    ``data``, and the layers analysed by default."""
    net = build_model(model)
    sample = load_dataset(data).inputs[:2]
    clf_name, _ = classifier_module(net, model.classifier)
    try:
        infos = list_layers(net, sample)
    except RuntimeError as error:
        raise DataError(
            f"the data do not fit model {model.name!r} ({str(error).splitlines()[0][:120]}); "
            "check the architecture arguments (e.g. in_features) and the data shape."
        ) from None
    return infos, default_layers(net, clf_name, sample)
