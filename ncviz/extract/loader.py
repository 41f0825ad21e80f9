"""Two-pass extraction over a user's own data loader, in the user's own process.

The same hooks, layer plans and float64 streaming statistics as :func:`ncviz.extract.extract`, but
the data come as batches from any iterable (a ``DataLoader``, a list, a generator factory) and the
model is called the way the user calls it. Pass 1 sums the class means (or the feature/target
means for regression) and draws a uniform random sample of feature rows; pass 2 sums the scatter
around the means. Nothing of size N·d is kept: per layer, O(C·d + d²) sums and ``sample_size`` rows.

The loader must yield the same samples in both passes (any order: the sums do not depend on it).
A loader whose pass-2 class counts differ from pass 1 is refused; one whose features differ (random
augmentation) is reported in :attr:`Capture.warnings`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ncviz.distributed import all_reduce_statistics, world
from ncviz.errors import DataError, InputError, OptionError
from ncviz.extract.layers import INPUT_SUFFIX, block_names
from ncviz.extract.plans import (
    ExtractOptions,
    Hooks,
    ProgressFn,
    classifier_arguments,
    layer_plan,
    reduce_output,
)
from ncviz.metrics import CollapseStatistics, RegressionStatistics

BatchFn = Callable[[Any], tuple[Any, Any]]
ForwardFn = Callable[[nn.Module, Any], Any]
LABEL_KEYS = ("labels", "label", "targets", "target", "y")
GROUP_KEYS = ("groups", "group", "environment", "env")
TASKS = ("auto", "classification", "regression")
# Relative difference of the pass-2 class sums from pass 1 above which the loader is reported as
# giving different features in the two passes (random augmentation, dropout in train mode).
REPEAT_RTOL = 1e-6


@dataclass
class CapturedLayer:
    """One layer of a capture: its statistics (both passes done) and the sampled feature rows."""

    name: str
    dim: int
    pooled: bool
    statistics: CollapseStatistics | RegressionStatistics
    sample: np.ndarray


@dataclass
class Capture:
    """What :func:`capture` measured: per layer, in the order asked for."""

    task: str
    num_samples: int
    layers: dict[str, CapturedLayer]
    sample_labels: np.ndarray  # class index (classification) or target row per sampled row
    warnings: list[str] = field(default_factory=list)
    # with groups: per group name, per layer, the group's own statistics (both passes done)
    groups: dict[str, dict[str, CollapseStatistics]] = field(default_factory=dict)


def split_batch(batch: Any, batch_fn: BatchFn | None = None) -> tuple[Any, Any]:
    """(inputs, labels) of one batch: ``batch_fn(batch)``, else ``(x, y, …)`` or a dict with a
    ``labels`` (``label``, ``targets``, …) entry whose other entries are the model's inputs."""
    if batch_fn is not None:
        return batch_fn(batch)
    if isinstance(batch, Mapping):
        key = next((k for k in LABEL_KEYS if k in batch), None)
        if key is None:
            raise DataError(
                f"a batch is a dict without labels (keys {sorted(batch)[:6]}); name them "
                f"{LABEL_KEYS[0]!r} or pass batch_fn=lambda b: (inputs, labels)."
            )
        return {k: v for k, v in batch.items() if k != key}, batch[key]
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return batch[0], batch[1]
    raise DataError(
        f"cannot find inputs and labels in a batch of type {type(batch).__name__}; yield "
        "(inputs, labels) or pass batch_fn=lambda b: (inputs, labels)."
    )


def split_grouped_batch(batch: Any, batch_fn: Callable | None = None) -> tuple[Any, Any, Any]:
    """(inputs, labels, groups) of one batch: ``batch_fn(batch)`` returning the three, else
    ``(x, y, g, …)`` or a dict with labels and a ``groups`` (``group``, ``environment``, ``env``)
    entry, which is not passed to the model."""
    if batch_fn is not None:
        parts = batch_fn(batch)
        if not (isinstance(parts, (tuple, list)) and len(parts) == 3):
            raise DataError("with groups, batch_fn must return (inputs, labels, groups).")
        return tuple(parts)
    if isinstance(batch, Mapping):
        key = next((k for k in GROUP_KEYS if k in batch), None)
        if key is None:
            raise DataError(
                f"a batch has no groups (keys {sorted(batch)[:6]}); add a 'groups' entry or "
                "pass batch_fn=lambda b: (inputs, labels, groups)."
            )
        inputs, labels = split_batch({k: v for k, v in batch.items() if k != key})
        return inputs, labels, batch[key]
    if isinstance(batch, (tuple, list)) and len(batch) >= 3:
        return batch[0], batch[1], batch[2]
    raise DataError(
        "with groups, each batch must be (inputs, labels, groups) or a dict with 'groups'; "
        "or pass batch_fn=lambda b: (inputs, labels, groups)."
    )


def _group_names(groups: Any, count: int) -> np.ndarray:
    """One group name per row of a batch (integers or text), checked."""
    if isinstance(groups, torch.Tensor):
        groups = groups.detach().cpu().numpy()
    names = np.asarray(groups).astype(str).reshape(-1)
    if len(names) != count:
        raise DataError(f"a batch has {count} samples but {len(names)} groups; give one each.")
    bad = [n for n in np.unique(names) if "/" in n or "|" in n or not n]
    if bad:
        raise DataError(f"group name {bad[0]!r} is empty or holds '/' or '|'; rename the group.")
    return names


def to_device(value: Any, device: torch.device) -> Any:
    """``value`` with every tensor in it (nested dicts/lists/tuples) moved to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, Mapping):
        return {k: to_device(v, device) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(to_device(v, device) for v in value)
    return value


def call_model(model: nn.Module, inputs: Any, forward_fn: ForwardFn | None = None) -> Any:
    """``forward_fn(model, inputs)``; else ``model(**inputs)`` for a dict, ``model(inputs)``."""
    if forward_fn is not None:
        return forward_fn(model, inputs)
    if isinstance(inputs, Mapping):
        return model(**inputs)
    return model(inputs)


def unwrap(model: nn.Module) -> nn.Module:
    """The module whose ``named_modules`` the user named: DDP/DataParallel (``module``) and
    ``torch.compile`` (``_orig_mod``) wrappers removed."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def model_device(model: nn.Module) -> torch.device:
    """Where the model's parameters (else buffers) live; CPU for a model without either."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _labels_tensor(labels: Any, task: str) -> torch.Tensor:
    y = torch.as_tensor(labels)
    if task == "classification":
        if y.is_floating_point() or y.ndim != 1:
            raise DataError(
                f"classification labels must be one integer class per sample, got a "
                f"{tuple(y.shape)} {str(y.dtype).removeprefix('torch.')} tensor; pass task="
                "'regression' for real-valued targets, or a batch_fn that returns class indices."
            )
        return y
    y = y.to(torch.float64)
    return y[:, None] if y.ndim == 1 else y.reshape(len(y), -1)


class _Sample:
    """A uniform random sample of ``size`` rows from a stream of unknown length: every row gets
    a random key and the ``size`` smallest keys are kept (bottom-k sampling). The keys live on
    the CPU, the rows on the features' device until :meth:`rows_numpy` (no sync per batch)."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.generator = torch.Generator().manual_seed(seed)
        self.keys = torch.empty(0, dtype=torch.float64)
        self.rows: dict[str, torch.Tensor] = {}
        self.labels: torch.Tensor | None = None

    def offer(self, features: dict[str, torch.Tensor], labels: torch.Tensor) -> None:
        keys = torch.rand(len(labels), generator=self.generator, dtype=torch.float64)
        if self.size == 0:
            return
        if len(self.keys) >= self.size:
            chosen = torch.nonzero(keys < self.keys.max()).flatten()
            if len(chosen) == 0:
                return
        else:
            chosen = torch.arange(len(keys))
        index = chosen.to(labels.device)
        self.keys = torch.cat([self.keys, keys[chosen]])
        self.labels = _append(self.labels, labels[index])
        for name, value in features.items():
            self.rows[name] = _append(self.rows.get(name), value[index].float())
        if len(self.keys) > self.size:
            keep = torch.argsort(self.keys)[: self.size]
            self.keys = self.keys[keep]
            keep = keep.to(self.labels.device)
            self.labels = self.labels[keep]
            self.rows = {name: rows[keep] for name, rows in self.rows.items()}

    def rows_numpy(self, name: str, dim: int) -> np.ndarray:
        rows = self.rows.get(name)
        return np.zeros((0, dim), np.float32) if rows is None else rows.cpu().numpy()


def _append(kept: torch.Tensor | None, new: torch.Tensor) -> torch.Tensor:
    return new if kept is None else torch.cat([kept, new])


def auto_layers(model: nn.Module, classifier: str | None) -> list[str]:
    """The default layers: every top-level block, then the classifier input."""
    blocks = block_names(model, classifier or "")
    return [*blocks, classifier + INPUT_SUFFIX] if classifier else blocks


def capture(
    model: nn.Module,
    loader: Iterable[Any],
    layers: list[str] | str = "auto",
    *,
    classifier: tuple[str, nn.Module] | None = None,
    task: str = "auto",
    num_classes: int | None = None,
    min_count: int | None = None,
    sample_size: int = 5000,
    seed: int = 0,
    batch_fn: BatchFn | None = None,
    forward_fn: ForwardFn | None = None,
    options: ExtractOptions | None = None,
    progress: ProgressFn | None = None,
    groups: bool = False,
) -> Capture:
    """Run ``loader`` through ``model`` twice and reduce the chosen layers into exact statistics.

    Args:
        model: any ``nn.Module`` (DDP/compile wrappers are looked through); it runs where its
            parameters are, in eval mode under ``torch.inference_mode``; its mode is restored.
        loader: batches as :func:`split_batch` reads them; iterated once per pass.
        layers: module names (``"<name>:input"`` for a module's input), or ``"auto"``: every
            top-level block and the classifier input (a block whose output *is* that input is
            listed once, as the classifier input).
        classifier: (name, module) of the linear head; its W, b join the statistics of
            ``"<name>:input"``. None: no classifier metrics.
        task: "classification" (integer labels), "regression" (real targets) or "auto" (from the
            first batch's label dtype).
        num_classes: C; default: the classifier's number of outputs.
        sample_size: feature rows kept per layer (uniform over the data, for embeddings).
        options: ``pool``/``autocast``/``max_flat_dim`` as for :func:`~ncviz.extract.extract`.
        progress: ``progress(done, total, stage)`` after every batch (total 0 when the loader
            has no length); raise from it to cancel.
        groups: batches carry a group per sample (``(x, y, g)``, see
            :func:`split_grouped_batch`); every group then gets its own statistics
            (:attr:`Capture.groups`; classification only, one process).
    """
    if task not in TASKS:
        raise OptionError(f"task must be one of {TASKS}, got {task!r}.")
    if sample_size < 0:
        raise OptionError(f"sample_size must be ≥ 0, got {sample_size}.")
    options = options or ExtractOptions()
    net = unwrap(model)
    device = model_device(net)
    clf_layer = None if classifier is None else classifier[0] + INPUT_SUFFIX
    auto = layers == "auto"
    names = auto_layers(net, classifier and classifier[0]) if auto else list(layers)
    if not names:
        raise OptionError("no layers to record; name at least one module of the model.")
    if clf_layer and clf_layer not in names:
        names.append(clf_layer)
    if len(set(names)) != len(names):
        raise OptionError(f"layers are listed twice: {names}.")
    hooks = Hooks(net, names)
    use_autocast = options.autocast and device.type == "cuda"
    was_training = net.training
    state = _State(task, num_classes, min_count, sample_size, seed, classifier, options, device)
    state.grouped = groups

    def forward(inputs: Any) -> dict[str, torch.Tensor]:
        """The hooked layers' outputs: unreduced for the first batch (it fixes the plans),
        flattened or pooled inside the hooks after that."""
        hooks.outputs.clear()
        hooks.raw = state.plans is None
        with torch.autocast(device.type, enabled=use_autocast):
            call_model(net, to_device(inputs, device), forward_fn)
        return dict(hooks.outputs)

    def planned(plans: dict[str, Any]) -> None:
        for name, plan in plans.items():
            hooks.pooled[name] = plan.pooled

    net.eval()
    try:
        with torch.inference_mode():
            return run_passes(
                forward, loader, names, state, batch_fn=batch_fn, progress=progress,
                dedupe=clf_layer if auto else None, on_plan=planned,
            )  # fmt: skip
    finally:
        hooks.close()
        net.train(was_training)


def capture_outputs(
    forward: Callable[[Any], dict[str, torch.Tensor]],
    loader: Iterable[Any],
    layers: list[str],
    *,
    classifier: tuple[str, Any] | None = None,
    task: str = "auto",
    num_classes: int | None = None,
    min_count: int | None = None,
    sample_size: int = 5000,
    seed: int = 0,
    batch_fn: BatchFn | None = None,
    options: ExtractOptions | None = None,
    device: torch.device | str = "cpu",
    progress: ProgressFn | None = None,
) -> Capture:
    """:func:`capture` for any ``forward(inputs) -> {layer: output}`` (e.g. an ONNX Runtime
    session): the same plans, statistics, sample and checks. ``classifier`` = (name, object with
    ``weight`` and ``bias`` tensors)."""
    state = _State(task, num_classes, min_count, sample_size, seed, classifier,
                   options or ExtractOptions(), torch.device(device))  # fmt: skip
    return run_passes(forward, loader, list(layers), state, batch_fn=batch_fn, progress=progress)


def run_passes(
    forward: Callable[[Any], dict[str, torch.Tensor]],
    loader: Iterable[Any],
    names: list[str],
    state: _State,
    *,
    batch_fn: BatchFn | None = None,
    progress: ProgressFn | None = None,
    dedupe: str | None = None,
    on_plan: Callable[[dict[str, Any]], None] | None = None,
) -> Capture:
    """Both statistics passes over ``loader``, whatever computes the layers: ``forward(inputs)``
    gives each named layer's output for a batch (torch hooks, or an ONNX Runtime session); the
    first batch's outputs, unreduced, fix each layer's plan (flatten or pool), later ones may come
    already reduced (``on_plan`` tells the producer the plans)."""
    try:
        total = 2 * len(loader)  # type: ignore[arg-type]
    except TypeError:
        total = 0
    done = 0
    for pass_index in (0, 1):
        for batch in loader:
            if state.grouped:
                inputs, labels, groups = split_grouped_batch(batch, batch_fn)
            else:
                (inputs, labels), groups = split_batch(batch, batch_fn), None
            raw = forward(inputs)
            if state.plans is None:
                names = state.plan(names, raw, dedupe, labels)
                if on_plan is not None:
                    on_plan(state.plans)
            outputs = {n: state.reduce(n, raw[n]) for n in names}
            state.update(pass_index, outputs, labels)
            if groups is not None:
                state.update_groups(pass_index, outputs, labels, groups)
            done += 1
            if progress is not None:
                progress(done, total, f"pass {pass_index + 1}/2")
        state.finish_pass(pass_index)
    return state.result()


class _State:
    """The statistics of one capture as its passes go (kept out of :func:`capture`'s loop)."""

    def __init__(
        self,
        task: str,
        num_classes: int | None,
        min_count: int | None,
        sample_size: int,
        seed: int,
        classifier: tuple[str, nn.Module] | None,
        options: ExtractOptions,
        device: torch.device,
    ) -> None:
        self.task, self.num_classes, self.min_count = task, num_classes, min_count
        self.classifier, self.options, self.device = classifier, options, device
        self.sample = _Sample(sample_size, seed)
        self.plans: dict[str, Any] | None = None
        self.stats: dict[str, CollapseStatistics | RegressionStatistics] = {}
        self.repeat_counts: torch.Tensor | None = None
        self.repeat_sums: dict[str, torch.Tensor] = {}
        self.warnings: list[str] = []
        self.grouped = False
        self.group_stats: dict[str, dict[str, CollapseStatistics]] = {}
        self.dropped_groups: set[str] = set()

    def plan(
        self, names: list[str], raw: dict[str, torch.Tensor], dedupe: str | None, labels: Any
    ) -> list[str]:
        """Shapes from the first batch: layer plans, the task, and the statistics objects."""
        silent = [n for n in names if n not in raw]
        if silent:
            raise OptionError(
                f"layer(s) {silent[:3]} did not run in the model's forward pass; record layers "
                "that the forward pass calls."
            )
        if dedupe is not None and dedupe in raw:
            final = raw[dedupe]
            names = [
                n for n in names
                if n == dedupe or not (raw[n].data_ptr() == final.data_ptr()
                                       and raw[n].shape == final.shape)
            ]  # fmt: skip
        self.plans = {n: layer_plan(n, tuple(raw[n].shape[1:]), self.options) for n in names}
        y = torch.as_tensor(labels)
        if self.task == "auto":
            self.task = "regression" if y.is_floating_point() else "classification"
        y = _labels_tensor(labels, self.task)
        if self.task == "classification":
            self._classification_stats()
        else:
            for name, plan in self.plans.items():
                weight = None
                if self.classifier is not None and name == self.classifier[0] + INPUT_SUFFIX:
                    weight = self.classifier[1].weight.detach().to("cpu", torch.float64)
                self.stats[name] = RegressionStatistics(
                    plan.dim, y.shape[1], weight, device=self.device
                )
        return names

    def _classification_stats(self) -> None:
        if self.num_classes is None:
            if self.classifier is None:
                raise OptionError(
                    "cannot tell the number of classes: pass num_classes (or a classifier)."
                )
            self.num_classes = int(self.classifier[1].weight.shape[0])
        self.stats.update(self._collapse_statistics(self.min_count))

    def _collapse_statistics(self, min_count: int | None) -> dict[str, CollapseStatistics]:
        """Empty statistics for every planned layer (the classifier's W, b on its input)."""
        classes = np.arange(self.num_classes)
        return {
            name: CollapseStatistics(
                self.num_classes, plan.dim, min_count=min_count, device=self.device,
                **classifier_arguments(plan, self.classifier, classes),
            )
            for name, plan in self.plans.items()
        }  # fmt: skip

    def reduce(self, name: str, raw: torch.Tensor) -> torch.Tensor:
        return reduce_output(raw, self.plans[name].pooled)

    def update(self, pass_index: int, outputs: dict[str, torch.Tensor], labels: Any) -> None:
        y = _labels_tensor(labels, self.task)
        classification = self.task == "classification"
        if classification:  # checked once here (on the loader's device), not once per layer
            y = y.to(torch.int64)
            if len(y) and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
                raise DataError(
                    f"a label is outside 0..{self.num_classes - 1}; pass num_classes (the number "
                    "of classes) or labels that index the classifier's outputs."
                )
        y = y.to(self.device, non_blocking=True)
        for name, stats in self.stats.items():
            if classification:
                stats.update(outputs[name], y, labels_checked=True, check_finite=False)
            else:
                stats.update(outputs[name], y, check_finite=False)
        if pass_index == 0:
            self.sample.offer(outputs, y)
        elif self.task == "classification":
            counts = torch.zeros_like(self.stats[next(iter(self.stats))].first.counts)
            counts.index_add_(0, y, torch.ones_like(y))
            self.repeat_counts = (
                counts if self.repeat_counts is None else self.repeat_counts + counts
            )
            for name, feats in outputs.items():
                sums = torch.zeros_like(self.stats[name].first.sums).index_add_(
                    0, y, feats.to(torch.float64)
                )
                previous = self.repeat_sums.get(name)
                self.repeat_sums[name] = sums if previous is None else previous + sums

    def update_groups(
        self, pass_index: int, outputs: dict[str, torch.Tensor], labels: Any, groups: Any
    ) -> None:
        """Each group's rows of the batch into that group's statistics (same passes)."""
        if self.task != "classification":
            raise OptionError("groups are measured for classification (class labels) only.")
        if world()[1] > 1:
            raise OptionError("groups are recorded in one process; record them without torchrun.")
        y = _labels_tensor(labels, self.task).to(torch.int64)
        names = _group_names(groups, len(y))
        for name in np.unique(names).tolist():
            if name in self.dropped_groups:
                continue
            rows = torch.from_numpy(np.flatnonzero(names == name))
            per_layer = self.group_stats.get(name)
            if per_layer is None:
                if pass_index == 1:
                    raise DataError(
                        f"group {name!r} appeared only in the second pass; use a loader that "
                        "yields the same data each time it is iterated."
                    )
                per_layer = self._collapse_statistics(max(self.min_count or 2, 2))
                self.group_stats[name] = per_layer
            index = rows.to(y.device)
            for layer, stats in per_layer.items():
                # the groups split the pooled rows, whose sums are checked for NaN once a pass
                stats.update(outputs[layer][index.to(outputs[layer].device)],
                             y[index].to(self.device), labels_checked=True,
                             check_finite=False)  # fmt: skip

    def _finish_groups(self, pass_index: int) -> None:
        """After pass 1, every group's second pass starts (a group with fewer than 2 classes
        is dropped with a warning)."""
        if pass_index != 0:
            return
        for name, per_layer in list(self.group_stats.items()):
            try:
                for stats in per_layer.values():
                    stats.start_second_pass()
            except InputError as error:  # fewer than 2 classes: no metrics for the group
                self.warnings.append(f"group {name!r} is left out: {error}")
                del self.group_stats[name]
                self.dropped_groups.add(name)

    def finish_pass(self, pass_index: int) -> None:
        if self.plans is None:
            raise DataError("the loader gave no batches; pass a loader with data.")
        self._finish_groups(pass_index)
        for name, stats in self.stats.items():
            all_reduce_statistics(stats)
            stats.require_finite_sums(f"layer {name!r}")  # one check per pass, not per batch
        if pass_index == 0:
            for stats in self.stats.values():
                stats.start_second_pass()
            return
        if self.task == "classification":
            self._check_repeat()

    def _check_repeat(self) -> None:
        first = next(iter(self.stats.values())).first
        counts = self.repeat_counts
        if world()[1] > 1:
            torch.distributed.all_reduce(counts)
        if not torch.equal(counts, first.counts):
            raise DataError(
                f"the loader gave {int(first.counts.sum())} samples in the first pass and "
                f"{int(counts.sum())} (or other classes) in the second; use a loader that yields "
                "the same data each time it is iterated (no drop_last, no sampling)."
            )
        if world()[1] > 1:
            return
        for name, sums in self.repeat_sums.items():
            reference = self.stats[name].first.sums
            scale = float(reference.abs().max()) or 1.0
            if float((sums - reference).abs().max()) > REPEAT_RTOL * scale:
                self.warnings.append(
                    "the loader gave different features in the two passes (random augmentation? "
                    "dropout?); the within-class statistics are approximate — record with a "
                    "loader without augmentation."
                )
                return

    def result(self) -> Capture:
        first = next(iter(self.stats.values()))
        if isinstance(first, CollapseStatistics):
            num_samples = int(first.first.counts.sum())
        else:
            num_samples = int(first.count)
        labels = self.sample.labels
        layers = {
            name: CapturedLayer(
                name=name,
                dim=plan.dim,
                pooled=plan.pooled,
                statistics=self.stats[name],
                sample=self.sample.rows_numpy(name, plan.dim),
            )
            for name, plan in self.plans.items()
        }
        return Capture(
            task=self.task,
            num_samples=num_samples,
            layers=layers,
            sample_labels=np.zeros(0, np.int64) if labels is None else labels.cpu().numpy(),
            warnings=self.warnings,
            groups=self.group_stats,
        )
