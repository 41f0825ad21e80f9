"""Record collapse from the user's own training loop into a run folder that ncviz opens anywhere.

>>> import torch, tempfile
>>> from torch import nn
>>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
>>> x, y = torch.randn(60, 4), torch.arange(60) % 3
>>> loader = [(x[k : k + 20], y[k : k + 20]) for k in range(0, 60, 20)]
>>> folder = tempfile.mkdtemp()
>>> with Recorder(folder, layers=["1"], classifier="2") as rec:
...     for epoch in range(2):
...         summary = rec.capture(net, loader, step=epoch)
...         rec.log(epoch, loss=1.0 / (epoch + 1))
>>> rec.layers
['1', '2:input']
>>> sorted(summary["2:input"])[:3]
['accuracy', 'cdnv', 'dual_distance_mean']

The folder then opens with ``ncviz analyze FOLDER`` and in the dashboard (Source → upload a zip of
it, or the server folder), with one row per (step, split, layer) and every page working on it.
"""

from __future__ import annotations

import datetime as _dt
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ncviz.distributed import world
from ncviz.errors import DataError, OptionError
from ncviz.extract.extractor import ExtractOptions, ProgressFn
from ncviz.extract.loader import BatchFn, Capture, ForwardFn, capture, unwrap
from ncviz.load.architectures import classifier_module
from ncviz.load.recorded import (
    RUN_FILE as _RUN_FILE,
)
from ncviz.load.recorded import (
    SAMPLE_COMPONENTS,
    SPLIT_NAME,
    Entry,
    entry_file_name,
    is_recorded_run,
    open_recorded,
    write_entry,
    write_run_file,
)
from ncviz.metrics import CollapseOptions, CollapseStatistics
from ncviz.metrics.conventions import DEFAULT_CONVENTION

AUTO = "auto"

# The routes for a model of one's own, in order of preference; shown by the dashboard's Source
# page and ``ncviz analyze --help`` (the README says the same).
CUSTOM_MODEL_ROUTES: tuple[tuple[str, str], ...] = (
    (
        "Record from your training loop (any nn.Module; your code never leaves your machine)",
        """import ncviz

rec = ncviz.Recorder("runs/my-run", layers=["body.2", "head"], classifier="head")
for epoch in range(epochs):
    train_one_epoch(model, train_loader)
    rec.capture(model, train_loader, step=epoch)              # split="train"
    rec.capture(model, test_loader, step=epoch, split="test")  # optional
    rec.log(epoch, loss=loss, train_acc=acc)
rec.close()
# then: ncviz analyze runs/my-run  (or zip the folder and upload it to the dashboard)""",
    ),
    (
        "Export an ONNX graph (run as data: no code reaches the server; module names are layers)",
        """import torch

torch.onnx.export(model, (example_batch,), "model.onnx", dynamo=True, optimize=False,
                  dynamic_shapes=({0: "batch"},))
# upload model.onnx (+ model.onnx.data) with your data; add state_dict checkpoints
# (.safetensors) of the same model to analyse a whole training run""",
    ),
    (
        "Export features files (one per epoch: feats_epoch_010.npz, …; a folder of them is a run)",
        """import numpy as np

np.savez(f"feats/feats_epoch_{epoch:03d}.npz", **{
    "features.penultimate": penultimate_features,  # N×d, any layers you like
    "labels": labels,                               # N (or "targets": N×n)
    "classifier.weight": W, "classifier.bias": b,   # optional
})""",
    ),
    (
        "A built-in architecture (mlp, cnn, resnet18_cifar, torchvision names) and its checkpoints",
        """ncviz analyze runs/cifar-resnet --data data/train.npz \\
    --model '{"name": "resnet18_cifar", "kwargs": {"num_classes": 10}}'""",
    ),
)


class Recorder:
    """Captures exact collapse statistics of a model, from any training loop, into ``path``.

    Each :meth:`capture` runs the loader through the model once (hooks on ``layers``; the second
    statistics pass replays the layer outputs from memory; twice when they outgrow a quarter of
    the free memory, or 4 GiB; float64 sums; the model's mode is restored) and writes one entry:
    per layer the O(C·d + d²) statistics the metric engine needs, the classifier's W and b, and
    ``sample_size`` randomly chosen feature rows for the embedding views. Metrics from an entry
    equal :func:`ncviz.collapse_metrics` on the full features (to ~1e-12).

    Args:
        path: the run folder (created; an existing recorded run is continued).
        layers: module names as in ``model.named_modules()`` (``"<name>:input"`` for a module's
            input), or ``"auto"``: every top-level block and the classifier input. The order is
            kept in every file, table and page.
        classifier: the linear head whose input is the penultimate feature and whose
            ``weight``/``bias`` are W, b: a module name, ``"auto"`` (the last ``nn.Linear``), or
            None. Its input is always recorded, as layer ``"<classifier>:input"``.
        num_classes: C (default: the classifier's number of outputs). ``class_names`` label them.
        task: "classification", "regression" (real-valued targets, NRC metrics), "language"
            (next-token classes of a causal LM: ``capture(model, ids, step)`` with token ids,
            ``(ids, mask)``, a dict with ``input_ids``/``attention_mask``, or batches of these;
            the head defaults to the LM head, ``min_count`` to 2; see :mod:`ncviz.language`)
            or "auto".
        sample_size: feature rows kept per layer and entry (default 5,000), for the embedding
            and multi-centre views.
        sample_components: the sample is stored as its coordinates on this many principal
            directions (default 50, what the embedding views reduce to; float16, scaled), or
            None for the raw float32 rows. With the compact statistics this keeps an entry
            near 0.5 MB per layer of width 1,024 (C = 10); the metrics are exact either way.
        min_count: drop classes with fewer samples (default: every class needs 2).
        convention: whose rows :meth:`capture` returns (``ncviz conventions``; e.g. "lc2024" for
            the Linguistic Collapse table's columns). It also sets ``min_count`` when that is not
            given (1 for lc2024). The entries store convention-free statistics: any page or
            ``ncviz analyze --convention`` reads the run in any convention.
        batch_fn: ``batch_fn(batch) -> (inputs, labels)`` for batches that are not ``(x, y)``
            or a dict with ``labels``.
        forward_fn: ``forward_fn(model, inputs)`` for models not called as ``model(inputs)``.
        autocast: run the forward passes under autocast (CUDA only).
        pool: "auto" | "flatten" | "avg" for convolutional maps, as in ``ncviz analyze``.
        progress: ``progress(done, total, stage)`` after every batch.
        groups: batches carry a group per sample — ``(x, y, g)``, a dict with ``groups``, or
            ``batch_fn`` returning three values — and every group (environment, domain) gets its
            own exact statistics beside the pooled ones (``ncviz.metrics.groups``: per-group
            rows, prototype distance, ETF alignment on the Environments page).
        feature_learning: ``"agop"`` and/or ``"gc"``: with every capture, also the rows of
            :func:`ncviz.feature_learning.feature_learning_rows` (NFA correlation and stage NC1
            per linear layer, geometric complexity and collapse at the classifier input) on the
            first ``feature_learning_samples`` samples of the loader (tensor inputs).
    """

    def __init__(
        self,
        path: str | Path,
        layers: Sequence[str] | str = AUTO,
        classifier: str | None = AUTO,
        *,
        num_classes: int | None = None,
        class_names: Sequence[Any] | None = None,
        task: str = AUTO,
        sample_size: int = 5000,
        sample_components: int | None = SAMPLE_COMPONENTS,
        min_count: int | None = None,
        convention: str = DEFAULT_CONVENTION,
        batch_fn: BatchFn | None = None,
        forward_fn: ForwardFn | None = None,
        autocast: bool = False,
        pool: str = AUTO,
        name: str | None = None,
        notes: str = "",
        seed: int = 0,
        progress: ProgressFn | None = None,
        feature_learning: Sequence[str] = (),
        feature_learning_samples: int = 1000,
        groups: bool = False,
    ) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise OptionError(f"{self.path} is a file; give the Recorder a folder for the run.")
        self.path.mkdir(parents=True, exist_ok=True)
        if (self.path / _RUN_FILE).exists() and not is_recorded_run(self.path):
            raise OptionError(
                f"{self.path} holds a run.json that the Recorder did not write; record into a "
                "new folder."
            )
        self.requested_layers = layers if isinstance(layers, str) else list(layers)
        if isinstance(layers, str) and layers != AUTO:
            raise OptionError(f'layers must be a list of module names or "auto", got {layers!r}.')
        self.classifier = classifier
        self.num_classes = num_classes
        self.class_names = None if class_names is None else list(class_names)
        self.task = task
        self.sample_size = int(sample_size)
        if sample_components is not None and int(sample_components) < 1:
            raise OptionError(
                f"sample_components must be a whole number ≥ 1 or None, got {sample_components!r}."
            )
        self.sample_components = None if sample_components is None else int(sample_components)
        self._size_warned = False
        # token classes: a class needs two occurrences (ncviz.language)
        self.metric_options = CollapseOptions.preset(convention)
        if min_count is None:
            min_count = self.metric_options.min_count
        self.min_count = 2 if min_count is None and task == "language" else min_count
        self.batch_fn, self.forward_fn = batch_fn, forward_fn
        self.options = ExtractOptions(pool=pool, autocast=autocast)
        self.seed, self.progress = seed, progress
        self.feature_learning = tuple(feature_learning)
        self.feature_learning_samples = int(feature_learning_samples)
        self.groups = bool(groups)
        if self.groups and task in ("regression", "language"):
            raise OptionError(f"groups are recorded for classification runs, not task={task!r}.")
        self.name = name or self.path.name
        self.notes = notes
        self.layers: list[str] = []
        self.entries: list[Entry] = []
        self.log_rows: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.classifier_name: str | None = None
        self.created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self.closed = False
        if is_recorded_run(self.path):
            self._resume()

    # -- public API ------------------------------------------------------------------------

    def capture(
        self,
        model: nn.Module,
        loader: Iterable[Any],
        step: int,
        split: str = "train",
    ) -> dict[str, dict[str, float]]:
        """Record one entry: ``loader`` through ``model`` at ``step`` on ``split``.

        Returns the metrics of every layer (``{layer: {metric: value}}``) for printing or
        logging; the entry itself is on disk when this returns. Capturing the same (step,
        split) again replaces the entry.
        """
        if self.closed:
            raise OptionError("this Recorder is closed; create a new one to record more.")
        step = _as_step(step)
        if not SPLIT_NAME.fullmatch(split):
            raise OptionError(
                f"split must be a short name of letters, digits, _ or - (e.g. 'train'), got "
                f"{split!r}."
            )
        net = unwrap(model)
        layers: list[str] | str = self.layers or self.requested_layers
        if self.task == "language":
            result = self._capture_tokens(net, loader, layers)
        else:
            clf = self._classifier(net)
            result = capture(
                net,
                loader,
                layers,
                classifier=clf,
                task=self.task,
                num_classes=self.num_classes,
                min_count=self.min_count,
                sample_size=self.sample_size,
                seed=self.seed + step,
                batch_fn=self.batch_fn,
                forward_fn=self.forward_fn,
                options=self.options,
                progress=self.progress,
                groups=self.groups,
            )
        self._adopt(result)
        file = entry_file_name(step, split)
        if world()[0] == 0:  # under DDP every rank measures (all-reduced sums); rank 0 writes
            write_entry(
                self.path / file,
                {name: _saved(layer.measured) for name, layer in result.layers.items()},
                {name: layer.sample for name, layer in result.layers.items()},
                result.sample_labels,
                {"step": str(step), "split": split, "task": result.task},
                group_states={
                    group: {name: _saved(stats) for name, stats in per_layer.items()}
                    for group, per_layer in result.groups.items()
                },
                sample_components=self.sample_components,
            )
            self._check_size()
        extra = self._feature_learning(net, loader) if self.feature_learning else {}
        entry = Entry(step, split, file, result.num_samples, tuple(result.warnings), extra)
        self.entries = [e for e in self.entries if (e.step, e.split) != (step, split)] + [entry]
        self._write_run()
        return {name: _metrics(layer.statistics, self) for name, layer in result.layers.items()}

    def log(self, step: int, **values: Any) -> None:
        """Per-step values shown beside the metrics (``loss``, ``train_acc``, ``lr``, …)."""
        row = self.log_rows.setdefault(_as_step(step), {})
        for key, value in values.items():
            row[key] = _scalar(key, value)
        self._write_run()

    def event(self, step: int, text: str) -> None:
        """Mark something that happened at ``step`` (``"lr drop"``) on the curves over training."""
        self.events.append({"step": _as_step(step), "text": str(text)[:200]})
        self._write_run()

    def close(self) -> None:
        """Write ``run.json`` a last time; later captures are refused."""
        if not self.closed:
            self._write_run()
            self.closed = True

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------

    def _classifier(self, net: nn.Module) -> tuple[str, nn.Module] | None:
        if self.classifier is None:
            return None
        name = None if self.classifier == AUTO else self.classifier
        if name is None and not any(isinstance(m, nn.Linear) for m in net.modules()):
            return None
        clf_name, module = classifier_module(net, name)
        self.classifier_name = clf_name
        return clf_name, module

    def _feature_learning(self, net: nn.Module, loader: Iterable[Any]) -> dict:
        """AGOP/GC rows on the loader's first samples (see ``feature_learning``)."""
        import torch

        from ncviz.extract.loader import split_batch
        from ncviz.feature_learning import feature_learning_rows

        if self.classifier_name is None:
            raise OptionError("feature_learning needs the model's classifier (classifier=…).")
        inputs, labels, count = [], [], 0
        for batch in loader:
            x, y = split_batch(batch, self.batch_fn)
            if not isinstance(x, torch.Tensor):
                raise OptionError("feature_learning needs tensor inputs (batches of (x, y)).")
            inputs.append(x)
            labels.append(torch.as_tensor(y))
            count += len(x)
            if count >= self.feature_learning_samples:
                break
        device = next(net.parameters()).device
        x = torch.cat(inputs)[: self.feature_learning_samples].to(device)
        y = torch.cat(labels)[: self.feature_learning_samples].cpu()
        was_training = net.training
        try:
            return feature_learning_rows(
                net,
                x,
                y,
                self.classifier_name,
                self.feature_learning,
                max_samples=self.feature_learning_samples,
                convention=self.metric_options.convention,
            )
        finally:
            net.train(was_training)

    def _capture_tokens(self, net: nn.Module, data: Any, layers: list[str] | str) -> Capture:
        """Next-token classes of a causal LM (ncviz.language) over ``data``: a corpus, token
        ids, (ids, mask), a dict with input_ids, or batches of these."""
        from ncviz.language import as_corpus, capture_tokens, lm_head

        name = None if self.classifier in (None, AUTO) else self.classifier
        head = lm_head(net, name)
        self.classifier_name = head[0]
        return capture_tokens(
            net,
            as_corpus(data),
            layers,
            head,
            min_count=self.min_count,
            sample_size=self.sample_size,
            progress=self.progress,
        )

    def _adopt(self, result: Capture) -> None:
        """The first capture fixes the run's layers, task and classes; later ones must match."""
        layers = list(result.layers)
        if self.layers and layers != self.layers:
            raise DataError(f"this capture recorded layers {layers}, the run has {self.layers}.")
        self.layers = layers
        if self.task == AUTO:
            self.task = result.task
        first = next(iter(result.layers.values())).statistics
        if isinstance(first, CollapseStatistics):
            count = first.first.num_classes
            self.num_classes = self.num_classes or count
            if self.class_names is None:
                self.class_names = list(range(count))
            elif len(self.class_names) != count:
                raise OptionError(
                    f"class_names has {len(self.class_names)} names for {count} classes."
                )

    def _check_size(self) -> None:
        """Warn once when the run folder outgrows what the dashboard accepts as one upload."""
        from ncviz.server.scratch import max_upload_bytes

        if self._size_warned:
            return
        limit = max_upload_bytes()
        size = sum(p.stat().st_size for p in self.path.iterdir() if p.is_file())
        if size > limit:
            self._size_warned = True
            warnings.warn(
                f"the recorded run {self.path} is {size / 2**20:.0f} MB, over the dashboard's "
                f"{limit / 2**20:.0f} MB upload limit: open it with `ncviz analyze "
                f"{self.path}` or from the server folder, or record fewer layers or steps.",
                stacklevel=3,
            )

    def _write_run(self) -> None:
        if world()[0] != 0:
            return
        steps = sorted(self.log_rows)
        keys = list(dict.fromkeys(k for row in self.log_rows.values() for k in row))
        log = {"step": steps, **{k: [self.log_rows[s].get(k) for s in steps] for k in keys}}
        write_run_file(
            self.path,
            {
                "name": self.name,
                "task": self.task if self.task != AUTO else "classification",
                "layers": self.layers,
                "classifier": self.classifier_name,
                "classes": self.class_names or [],
                "entries": [
                    {
                        "step": e.step,
                        "split": e.split,
                        "file": e.file,
                        "num_samples": e.num_samples,
                        "warnings": list(e.warnings),
                        **({"extra": e.extra} if e.extra else {}),
                    }
                    for e in sorted(self.entries, key=lambda e: (e.step, e.split))
                ],
                "log": log if steps else {},
                "events": self.events,
                "notes": self.notes,
                "options": {
                    "sample_size": self.sample_size,
                    "sample_components": self.sample_components,
                    "min_count": self.min_count,
                    "pool": self.options.pool,
                },
                "created": self.created,
            },
        )

    def _resume(self) -> None:
        try:
            run = open_recorded(self.path)
        except DataError:
            return  # a run.json without entries yet: start afresh
        self.layers, self.entries, self.events = run.layers, list(run.entries), run.events
        self.task = run.task if self.task == AUTO else self.task
        self.class_names = self.class_names or run.classes or None
        self.classifier_name = run.classifier
        steps = run.log.get("step", [])
        for index, step in enumerate(steps):
            self.log_rows[int(step)] = {
                k: v[index] for k, v in run.log.items() if k != "step" and v[index] is not None
            }


def _saved(statistics: Any) -> dict[str, Any]:
    """What an entry keeps of a layer's statistics: the compact state where there is one."""
    if isinstance(statistics, CollapseStatistics):
        return statistics.state_dict(compact=True)
    return statistics.state_dict()


def _metrics(statistics: Any, recorder: Recorder) -> dict[str, float]:
    if isinstance(statistics, CollapseStatistics):
        classes = np.asarray(recorder.class_names) if recorder.class_names else None
        options = replace(recorder.metric_options, min_count=None)  # fixed when recording
        return statistics.compute(classes, options).metrics
    return statistics.compute(recorder.metric_options).metrics


def _as_step(step: Any) -> int:
    if isinstance(step, bool) or int(step) != step or int(step) < 0:
        raise OptionError(
            f"step must be a non-negative integer (epoch or global step), got {step!r}."
        )
    return int(step)


def _scalar(key: str, value: Any) -> float | int | str | None:
    if hasattr(value, "item"):
        value = value.item()
    if value is None or isinstance(value, (int, float, str)):
        return value
    raise OptionError(f"log value {key}={value!r} is not a number or text.")
