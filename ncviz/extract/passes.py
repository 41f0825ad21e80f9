"""The one pass driver: every extraction in ncviz is :func:`run_passes` over batches.

Two passes over the data, reduced into exact float64 statistics as they stream
(:class:`~ncviz.metrics.CollapseStatistics`, :class:`~ncviz.metrics.RegressionStatistics`):
pass 1 sums the class means (or the feature/target means), draws a uniform random sample of
feature rows and, when asked, keeps every row; pass 2 sums the scatter around the means. Groups
(environments, domains) get their own statistics beside the pooled ones. The statistics are
O(C·d + d²) per layer; pass 1's layer outputs are held to replay pass 2 without a second forward
only within a fixed budget (a quarter of the free memory, at most 4 GiB: :func:`replay_budget`),
past which the pass streams, so nothing of size N·d outgrows that budget unless ``keep_features``
asks for every row.

What differs between the ways data reach the loop lives in small adapters, each giving a
``forward(inputs) -> {layer: output}`` and the batches of a pass:

* :func:`ncviz.extract.extract` — a :class:`~ncviz.load.datasets.Dataset` in order, torch hooks,
  the activation cache as a forward that writes rows in pass 1 and reads them back in pass 2,
  and each rank's shard under ``torchrun``;
* :func:`ncviz.extract.loader.capture` — a user's own loader and model call (``ncviz.Recorder``);
* :func:`ncviz.extract.loader.capture_outputs` — any forward, e.g. an ONNX Runtime session;
* :func:`ncviz.language.token_statistics` — the next-token classes of a causal language model.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import GeneratorType
from typing import Any

import numpy as np
import torch

from ncviz.distributed import all_reduce_statistics, on_every_rank, world
from ncviz.errors import DataError, InputError, OptionError
from ncviz.extract.budget import GIB, MemoryNeed, check_fits, memory_headroom, passes_need
from ncviz.extract.layers import INPUT_SUFFIX
from ncviz.extract.plans import (
    ExtractOptions,
    LayerFeatures,
    ProgressFn,
    classifier_arguments,
    layer_plan,
    reduce_output,
)
from ncviz.metrics import CollapseStatistics, RegressionStatistics

BatchFn = Callable[[Any], Any]
Forward = Callable[[Any], dict[str, torch.Tensor]]
LABEL_KEYS = ("labels", "label", "targets", "target", "y")
GROUP_KEYS = ("groups", "group", "environment", "env")
TASKS = ("auto", "classification", "regression")
# Relative difference of the pass-2 class sums from pass 1 above which the loader is reported as
# giving different features in the two passes (random augmentation, dropout in train mode).
REPEAT_RTOL = 1e-6
# Pass 2 replays pass 1's layer outputs from memory when they fit in a quarter of the free memory
# (host, or the accelerator's where they live) and at most this much.
REPLAY_MAX_BYTES = 4 * GIB
# rows are held in blocks of at least this many bytes when the pass's length is unknown (glibc
# gives allocations this large their own mapping, released whole)
_BLOCK_BYTES = 2**25


@dataclass(frozen=True)
class PassSettings:
    """What one run of :func:`run_passes` measures; the model and the data come separately.

    ``task``: "classification" (integer labels), "regression" (real targets) or "auto" (from the
    first batch's label dtype). ``num_classes``: C (default: the classifier's number of outputs).
    ``class_names``: the C names (messages, and which row of the classifier is which class when
    they are integers; default 0..C−1). ``classifier``: (layer name, object with ``weight`` and
    ``bias``) whose W, b join the statistics of ``"<name>:input"``. ``sample_size`` rows are
    drawn uniformly per layer; ``keep_features`` keeps every row of pass 1 in order.
    ``statistics=False`` runs one pass that only keeps features. ``check_repeat``: compare the
    two passes' class sums (a user's loader may differ between passes; our own data cannot).
    ``grouped``: batches carry a group per sample (classification only, one process).
    ``replay``: hold pass 1's layer outputs and run pass 2 on them when they fit
    (:func:`replay_budget`) — the model runs once — else run the model again.
    """

    task: str = "auto"
    num_classes: int | None = None
    class_names: np.ndarray | None = None
    min_count: int | None = None
    sample_size: int = 0
    seed: int = 0
    classifier: tuple[str, Any] | None = None
    options: ExtractOptions = field(default_factory=ExtractOptions)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    keep_features: bool = False
    statistics: bool = True
    check_repeat: bool = True
    grouped: bool = False
    replay: bool = True
    stage: str = ""  # said after "pass k/2" in progress messages

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise OptionError(f"task must be one of {TASKS}, got {self.task!r}.")
        if self.sample_size < 0:
            raise OptionError(f"sample_size must be ≥ 0, got {self.sample_size}.")

    @property
    def passes(self) -> int:
        return 2 if self.statistics else 1


@dataclass
class CapturedLayer:
    """One layer of a capture: its statistics (both passes done) and the sampled feature rows."""

    name: str
    dim: int
    pooled: bool
    statistics: CollapseStatistics | RegressionStatistics | None
    sample: np.ndarray
    features: np.ndarray | None = None  # every row of pass 1 (``keep_features``)

    @property
    def measured(self) -> CollapseStatistics | RegressionStatistics:
        """The statistics, which every capture but a features-only one has."""
        if self.statistics is None:
            raise InputError(f"layer {self.name!r} was captured without statistics.")
        return self.statistics


@dataclass
class Capture:
    """What :func:`run_passes` measured: per layer, in the order asked for."""

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
        parts = batch_fn(batch)
        return parts[0], parts[1]
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


def split_grouped_batch(batch: Any, batch_fn: BatchFn | None = None) -> tuple[Any, Any, Any]:
    """(inputs, labels, groups) of one batch: ``batch_fn(batch)`` returning the three, else
    ``(x, y, g, …)`` or a dict with labels and a ``groups`` (``group``, ``environment``, ``env``)
    entry, which is not passed to the model."""
    if batch_fn is not None:
        parts = batch_fn(batch)
        if not (isinstance(parts, (tuple, list)) and len(parts) == 3):
            raise DataError("with groups, batch_fn must return (inputs, labels, groups).")
        return parts[0], parts[1], parts[2]
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


def run_passes(
    forward: Forward,
    batches: Callable[[int], Iterable[Any]],
    names: list[str],
    settings: PassSettings,
    *,
    batch_fn: BatchFn | None = None,
    progress: ProgressFn | None = None,
    total: int | None = None,
    plans: dict[str, LayerFeatures] | None = None,
    dedupe: str | None = None,
    on_plan: Callable[[dict[str, LayerFeatures]], None] | None = None,
) -> Capture:
    """Both passes of ``batches(pass_index)`` through ``forward``, reduced per layer.

    ``forward(inputs)`` gives each named layer's output for a batch's inputs. Without ``plans``
    the first batch's outputs, unreduced, fix each layer's plan (flatten or pool; ``on_plan``
    tells the producer so later outputs may come reduced); ``dedupe`` (the classifier input)
    then drops the layers whose output is that very tensor. ``total``: batches per pass, for
    progress (default ``len`` of the first pass's batches, else 0 = unknown). Raise from
    ``progress`` to cancel. A generator of batches is closed whatever happens, so an adapter's
    pass-scoped resources (cache writers) are released; a user's iterator is left alone.
    """
    state = _State(settings)
    if plans is not None:
        state.plans = plans
    passes = settings.passes
    held = _Held() if passes == 2 and settings.replay else None
    done = 0
    for pass_index in range(passes):
        stream = batches(pass_index)
        if total is None:
            try:
                total = len(stream)  # type: ignore[arg-type]
            except TypeError:
                total = 0
        iterator = iter(stream)
        try:
            for batch in iterator:
                if settings.grouped:
                    inputs, labels, groups = split_grouped_batch(batch, batch_fn)
                else:
                    (inputs, labels), groups = split_batch(batch, batch_fn), None
                raw = forward(inputs)
                if state.plans is None:
                    planned = state.plan(names, raw, dedupe)
                    if on_plan is not None:
                        on_plan(planned)
                    names = list(planned)
                if done == 0:
                    need = state.need(len(labels), total)
                    if settings.device.type == "cpu":  # refuse what cannot fit
                        check_fits(need)
                    if held is not None:  # what may be held beside what the passes need
                        held.budget = replay_budget(settings.device, need.total)
                        held.rows_hint = total * len(labels)
                if not state.stats and settings.statistics:
                    state.start(labels)
                outputs = {n: state.reduce(n, raw[n]) for n in names}
                keys = state.sample.draw(len(labels)) if pass_index == 0 else None
                batch = _Batch(outputs, labels, groups, keys)
                if pass_index == 1 or held is None or not held.keep(batch):
                    if held is not None:  # over the budget: what was held goes in first
                        _spill(state, held)
                    state.add(pass_index, batch)
                done += 1
                if progress is not None:
                    stage = f"pass {pass_index + 1}/{passes}"
                    progress(done, total * passes, f"{stage} {settings.stage}".rstrip())
        finally:  # a generator's pass-scoped resources are released whatever happened
            if isinstance(iterator, GeneratorType):
                iterator.close()
        if pass_index == 0 and held is not None:
            if on_every_rank(bool(held.batches) and not held.overflowed, settings.device):
                _replay(state, held, progress, done, total * passes)
                break
            _spill(state, held)  # another rank could not hold its pass: run it again
        state.finish_pass(pass_index)
    return state.result()


def replay_budget(device: torch.device, need: int = 0) -> int:
    """Bytes of pass-1 layer outputs that may be held for the replay of pass 2: a quarter of the
    memory left where they live (the accelerator's free memory, else this process's headroom)
    once the passes have what they ``need`` (:func:`~ncviz.extract.budget.passes_need`), at
    most :data:`REPLAY_MAX_BYTES`."""
    free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else memory_headroom()
    if free is None:  # nothing says how much is free
        return REPLAY_MAX_BYTES
    return max(0, min(REPLAY_MAX_BYTES, (free - need) // 4))


@dataclass
class _Batch:
    """One batch as the passes take it: reduced layer outputs, labels, groups, sample keys."""

    outputs: dict[str, torch.Tensor]
    labels: Any
    groups: Any
    keys: torch.Tensor | None  # pass 1: the rows' keys for the embedding sample


class _Held:
    """Pass 1's batches, held while they fit in ``budget`` bytes, to be replayed as pass 2.

    Each layer's rows are copied into large blocks allocated ahead (the whole pass when its
    length is known, else :data:`_BLOCK_BYTES` at a time), not kept as the forward's own small
    tensors: those, kept between the temporaries the forward frees every batch, pinned the heap
    so that a tight worker's memory grew ten times faster than what it held."""

    def __init__(self, budget: int = 0) -> None:
        self.budget = budget
        self.rows_hint = 0  # rows the pass will give, when known
        self.blocks: dict[str, list[torch.Tensor]] = {}
        self.filled: dict[str, list[int]] = {}  # rows written into each block
        self.batches: deque[_Batch] = deque()  # labels, groups, keys; outputs left empty
        self.rows: deque[int] = deque()  # rows of each held batch
        self.held_rows = 0
        self.bytes = 0
        self.overflowed = False

    def keep(self, batch: _Batch) -> bool:
        """Hold ``batch`` if it fits (False from the first batch that does not, on)."""
        count = len(batch.labels)
        new_blocks: dict[str, int] = {}  # layer → rows of the block to add
        for name, out in batch.outputs.items():
            blocks, filled = self.blocks.get(name, []), self.filled.get(name, [])
            if not blocks or len(blocks[-1]) - filled[-1] < count:
                ahead = self.rows_hint - self.held_rows
                new_blocks[name] = max(count, ahead, _BLOCK_BYTES // _row_bytes(out))
        size = sum(rows * _row_bytes(batch.outputs[name]) for name, rows in new_blocks.items())
        if self.overflowed or self.bytes + size > self.budget:
            self.overflowed = True
            return False
        for name, rows in new_blocks.items():
            out = batch.outputs[name]
            self.blocks.setdefault(name, []).append(out.new_empty((rows, *out.shape[1:])))
            self.filled.setdefault(name, []).append(0)
        for name, out in batch.outputs.items():
            start = self.filled[name][-1]
            self.blocks[name][-1][start : start + count] = out
            self.filled[name][-1] = start + count
        self.bytes += size
        self.batches.append(_Batch({}, batch.labels, batch.groups, batch.keys))
        self.rows.append(count)
        self.held_rows += count
        return True

    def _layer_rows(self) -> dict[str, list[torch.Tensor]]:
        """Each layer's filled rows, block by block (and the blocks no longer held here)."""
        layers = {
            name: [block[:rows] for block, rows in zip(blocks, self.filled[name])]
            for name, blocks in self.blocks.items()
        }
        self.blocks, self.filled, self.bytes = {}, {}, 0
        return layers

    def drain(self) -> Iterator[_Batch]:
        """The held batches, in order, handed back one at a time (and no longer held)."""
        layers = self._layer_rows()
        position = {name: (0, 0) for name in layers}  # (block, row) each layer has reached
        while self.batches:
            batch, count = self.batches.popleft(), self.rows.popleft()
            for name, blocks in layers.items():
                index, start = position[name]
                if start == len(blocks[index]):  # a batch never straddles two blocks
                    index, start = index + 1, 0
                batch.outputs[name] = blocks[index][start : start + count]
                position[name] = (index, start + count)
            yield batch

    def joined(self) -> _Batch:
        """All held batches as one (each layer's rows in one tensor, one layer at a time)."""
        layers = self._layer_rows()
        batches, self.batches, self.rows = list(self.batches), deque(), deque()
        outputs = {}
        for name in list(layers):
            blocks = layers.pop(name)
            outputs[name] = blocks[0] if len(blocks) == 1 else torch.cat(blocks)
        first = batches[0]
        labels = torch.cat([torch.as_tensor(b.labels) for b in batches])
        groups = None
        if first.groups is not None:
            groups = np.concatenate([_group_names(b.groups, len(b.labels)) for b in batches])
        keys = torch.cat([b.keys for b in batches if b.keys is not None])
        return _Batch(outputs, labels, groups, keys)


def _row_bytes(rows: torch.Tensor) -> int:
    """Bytes of one row of ``rows`` (at least 1)."""
    return max(1, rows.shape[1:].numel() * rows.element_size())


def _spill(state: _State, held: _Held) -> None:
    """The held batches into pass 1's statistics, in order, each released as it goes in."""
    for batch in held.drain():
        state.add(0, batch)


def _replay(state: _State, held: _Held, progress: ProgressFn | None, done: int, total: int) -> None:
    """Both passes' statistics from the held outputs of pass 1, all rows of a layer at once."""
    count = len(held.batches)
    batch = held.joined()
    state.replayed = True
    for pass_index in (0, 1):
        state.add(pass_index, batch)
        state.finish_pass(pass_index)
        if progress is not None:  # the replay stands for the second pass's batches
            stage = f"pass 2/2 {state.settings.stage}".rstrip()
            progress(done + (count if pass_index else count // 2), total, stage)


def labels_tensor(labels: Any, task: str) -> torch.Tensor:
    """One batch's labels checked for ``task``: int class indices, or N×k float64 targets."""
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


def classifier_classes(names: np.ndarray) -> np.ndarray:
    """The class names as integers when every name is one (they then index the classifier's
    rows: a subset of digits keeps rows 3 and 5 for classes "3" and "5"), else as given."""
    try:
        return np.array([int(name) for name in names])
    except (TypeError, ValueError):
        return np.asarray(names)


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

    def draw(self, count: int) -> torch.Tensor:
        """The next ``count`` random keys (one per row, in stream order)."""
        return torch.rand(count, generator=self.generator, dtype=torch.float64)

    def offer(
        self, features: dict[str, torch.Tensor], labels: torch.Tensor, keys: torch.Tensor
    ) -> None:
        """Offer a batch's rows with the ``keys`` :meth:`draw` gave them when the batch came."""
        if self.size == 0:
            return
        # only a batch's own ``size`` smallest keys can be among the smallest of the stream
        chosen = (
            torch.topk(keys, self.size, largest=False).indices
            if len(keys) > self.size
            else torch.arange(len(keys))
        )
        if len(self.keys) >= self.size:
            chosen = chosen[keys[chosen] < self.keys.max()]
            if len(chosen) == 0:
                return
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


class _State:
    """The statistics of one run of the passes as they go (kept out of the loop)."""

    def __init__(self, settings: PassSettings) -> None:
        self.settings = settings
        self.task = settings.task
        self.num_classes = settings.num_classes
        self.sample = _Sample(settings.sample_size, settings.seed)
        self.plans: dict[str, LayerFeatures] | None = None
        self.stats: dict[str, CollapseStatistics | RegressionStatistics] = {}
        self.kept: dict[str, list[np.ndarray]] = {}
        self.num_rows = 0
        self.repeat_counts: torch.Tensor | None = None
        self.repeat_sums: dict[str, torch.Tensor] = {}
        self.warnings: list[str] = []
        self.group_stats: dict[str, dict[str, CollapseStatistics]] = {}
        self.dropped_groups: set[str] = set()
        self.replayed = False  # pass 2 ran on pass 1's outputs held in memory

    def plan(
        self, names: list[str], raw: dict[str, torch.Tensor], dedupe: str | None
    ) -> dict[str, LayerFeatures]:
        """Each layer's plan from the shapes of the first batch's unreduced outputs."""
        silent = [n for n in names if n not in raw]
        if silent:
            raise OptionError(
                f"layer(s) {silent[:3]} did not run in the model's forward pass; record layers "
                "that the forward pass calls."
            )
        if dedupe is not None and dedupe in raw:
            final = raw[dedupe]
            names = [
                n
                for n in names
                if n == dedupe
                or not (raw[n].data_ptr() == final.data_ptr() and raw[n].shape == final.shape)
            ]
        options = self.settings.options
        self.plans = {n: layer_plan(n, tuple(raw[n].shape[1:]), options) for n in names}
        return self.plans

    def need(self, batch_rows: int, batches: int | None) -> MemoryNeed:
        """The memory the passes will hold for the planned layers (:mod:`.budget`)."""
        assert self.plans is not None
        settings = self.settings
        classes = self.num_classes
        if classes is None and settings.classifier is not None:
            classes = int(settings.classifier[1].weight.shape[0])
        return passes_need(
            {name: plan.dim for name, plan in self.plans.items()},
            classes or 0,
            num_rows=batch_rows * (batches or 1),
            keep_features=settings.keep_features,
            sample_size=settings.sample_size,
        )

    def start(self, labels: Any) -> None:
        """The task (from the first labels when "auto") and empty statistics for every layer."""
        y = torch.as_tensor(labels)
        if self.task == "auto":
            self.task = "regression" if y.is_floating_point() else "classification"
        y = labels_tensor(labels, self.task)
        if self.task == "classification":
            if self.num_classes is None:
                if self.settings.classifier is None:
                    raise OptionError(
                        "cannot tell the number of classes: pass num_classes (or a classifier)."
                    )
                self.num_classes = int(self.settings.classifier[1].weight.shape[0])
            self.stats.update(self._collapse_statistics(self.settings.min_count))
            return
        assert self.plans is not None
        classifier = self.settings.classifier
        for name, plan in self.plans.items():
            weight = bias = None
            if classifier is not None and name == classifier[0] + INPUT_SUFFIX:
                weight = classifier[1].weight.detach().to("cpu", torch.float64)
                if getattr(classifier[1], "bias", None) is not None:
                    bias = classifier[1].bias.detach().to("cpu", torch.float64)
                if self.settings.task == "auto" and weight.shape[0] != y.shape[1]:
                    raise DataError(
                        f"the labels are {str(torch.as_tensor(labels).dtype)[6:]} numbers, so "
                        f"the run was taken for a regression, but the head {classifier[0]!r} "
                        f"has {weight.shape[0]} outputs for {y.shape[1]} target(s); pass "
                        "integer class labels (labels.long()), or task='regression' with "
                        "targets as wide as the head."
                    )
            self.stats[name] = RegressionStatistics(
                plan.dim, y.shape[1], weight, bias=bias, device=self.settings.device
            )

    @property
    def class_names(self) -> np.ndarray:
        names = self.settings.class_names
        return np.arange(self.num_classes or 0) if names is None else np.asarray(names)

    def _collapse_statistics(self, min_count: int | None) -> dict[str, CollapseStatistics]:
        """Empty statistics for every planned layer (the classifier's W, b on its input)."""
        assert self.plans is not None and self.num_classes is not None
        rows = classifier_classes(self.class_names)
        return {
            name: CollapseStatistics(
                self.num_classes,
                plan.dim,
                min_count=min_count,
                device=self.settings.device,
                **classifier_arguments(plan, self.settings.classifier, rows),
            )
            for name, plan in self.plans.items()
        }

    def reduce(self, name: str, raw: torch.Tensor) -> torch.Tensor:
        assert self.plans is not None
        return reduce_output(raw, self.plans[name].pooled)

    def update(
        self,
        pass_index: int,
        outputs: dict[str, torch.Tensor],
        labels: Any,
        keys: torch.Tensor | None,
    ) -> None:
        """Add a batch to the current pass (``keys``: pass 1's sample keys, drawn as it came)."""
        if pass_index == 0 and self.settings.keep_features:
            for name, feats in outputs.items():
                self.kept.setdefault(name, []).append(feats.float().cpu().numpy())
        if pass_index == 0:
            self.num_rows += len(next(iter(outputs.values()))) if outputs else 0
        if not self.settings.statistics:
            return
        y = labels_tensor(labels, self.task)
        classification = self.task == "classification"
        if classification:  # checked once here (on the loader's device), not once per layer
            y = y.to(torch.int64)
            assert self.num_classes is not None
            if len(y) and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
                raise DataError(
                    f"a label is outside 0..{self.num_classes - 1}; pass num_classes (the number "
                    "of classes) or labels that index the classifier's outputs."
                )
        if len(y) == 0:  # e.g. a batch of padding: nothing to add
            return
        y = y.to(self.settings.device, non_blocking=True)
        for name, stats in self.stats.items():
            if isinstance(stats, CollapseStatistics):
                stats.update(outputs[name], y, labels_checked=True, check_finite=False)
            else:
                stats.update(outputs[name], y, check_finite=False)
        if pass_index == 0:
            assert keys is not None
            self.sample.offer(outputs, y, keys)
        elif classification and self.settings.check_repeat and not self.replayed:
            self._repeat_sums(outputs, y)

    def add(self, pass_index: int, batch: _Batch) -> None:
        """One batch (or all held batches joined) into the current pass's statistics."""
        self.update(pass_index, batch.outputs, batch.labels, batch.keys)
        if batch.groups is not None:
            self.update_groups(pass_index, batch.outputs, batch.labels, batch.groups)

    def _repeat_sums(self, outputs: dict[str, torch.Tensor], y: torch.Tensor) -> None:
        """Pass 2's class counts and sums, to compare with pass 1's (:meth:`_check_repeat`)."""
        first = self.stats[next(iter(self.stats))]
        assert isinstance(first, CollapseStatistics)
        counts = torch.zeros_like(first.first.counts)
        counts.index_add_(0, y, torch.ones_like(y))
        self.repeat_counts = counts if self.repeat_counts is None else self.repeat_counts + counts
        for name, feats in outputs.items():
            stats = self.stats[name]
            assert isinstance(stats, CollapseStatistics)
            sums = torch.zeros_like(stats.first.sums).index_add_(0, y, feats.to(torch.float64))
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
        y = labels_tensor(labels, self.task).to(torch.int64)
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
                per_layer = self._collapse_statistics(max(self.settings.min_count or 2, 2))
                self.group_stats[name] = per_layer
            index = rows.to(y.device)
            for layer, stats in per_layer.items():
                # the groups split the pooled rows, whose sums are checked for NaN once a pass
                stats.update(
                    outputs[layer][index.to(outputs[layer].device)],
                    y[index].to(self.settings.device),
                    labels_checked=True,
                    check_finite=False,
                )

    def _finish_groups(self, pass_index: int) -> None:
        """After pass 1, every group's second pass starts (a group with fewer than 2 classes
        is dropped with a warning)."""
        if pass_index != 0:
            return
        for name, per_layer in list(self.group_stats.items()):
            try:
                for stats in per_layer.values():
                    stats.start_second_pass(self.class_names)
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
                if isinstance(stats, CollapseStatistics):
                    stats.start_second_pass(self.class_names)
                else:
                    stats.start_second_pass()
            return
        if self.task == "classification" and self.settings.check_repeat and not self.replayed:
            self._check_repeat()

    def _check_repeat(self) -> None:
        first = next(iter(self.stats.values()))
        assert isinstance(first, CollapseStatistics)
        counts = self.repeat_counts
        assert counts is not None
        if world()[1] > 1:
            torch.distributed.all_reduce(counts)
        if not torch.equal(counts, first.first.counts):
            raise DataError(
                f"the loader gave {int(first.first.counts.sum())} samples in the first pass and "
                f"{int(counts.sum())} (or other classes) in the second; use a loader that yields "
                "the same data each time it is iterated (no drop_last, no sampling)."
            )
        if world()[1] > 1:
            return
        for name, sums in self.repeat_sums.items():
            stats = self.stats[name]
            assert isinstance(stats, CollapseStatistics)
            reference = stats.first.sums
            scale = float(reference.abs().max()) or 1.0
            if float((sums - reference).abs().max()) > REPEAT_RTOL * scale:
                self.warnings.append(
                    "the loader gave different features in the two passes (random augmentation? "
                    "dropout?); the within-class statistics are approximate — record with a "
                    "loader without augmentation."
                )
                return

    def result(self) -> Capture:
        assert self.plans is not None
        num_samples = self.num_rows
        if self.stats:
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
                statistics=self.stats.get(name),
                sample=self.sample.rows_numpy(name, plan.dim),
                features=np.concatenate(self.kept[name]) if self.kept.get(name) else None,
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
