"""Recorded runs: the folder :class:`ncviz.Recorder` writes, and every reader opens.

Layout::

    runs/my-run/
      run.json                           format, task, layers (in order), classes, entries,
                                         log, events, options
      step-00000003.train.safetensors    one entry per (step, split)

With groups (``Recorder(groups=True)``), each group's statistics of a layer are stored beside
the layer's as ``<layer>|group=<name>/<field>``.

An entry holds, per layer, the exact sums of both statistics passes (``<layer>/counts``,
``<layer>/sums``, … — :meth:`CollapseStatistics.state_dict`, or
:meth:`RegressionStatistics.state_dict` for regression), W and b of the classifier for its input
layer, and a uniform random sample of feature rows for the views (labels in ``sample_labels``).
Never the N×d features.

Size (``compact``, the default): the within-class scatter is kept as what the metrics read of it
(``scatter_basis`` k×d, ``scatter_projected`` k×k, ``feature_spectrum``; k ≤ min(C, d), see
:class:`ncviz.metrics.stats.CompactScatter`) — O(C·d) float64 instead of d×d — and the sample as
its coordinates on its top ``SAMPLE_COMPONENTS`` principal directions (``sample_coords``
float16, scaled per component by ``sample_scale``; ``sample_basis``, ``sample_mean``; the
variance kept in ``sample_variance``), which is what the embedding views use (UMAP runs on PCA-50
anyway). A digits CNN layer of width 1,024 with C = 10 and 1,797 rows takes ≈ 0.55 MB per
capture. Older entries with the full ``<layer>/scatter`` and raw ``<layer>/sample`` rows read
the same way.

Entries and ``run.json`` are written to a temporary file and renamed into place, so a killed job
leaves a readable run of its complete entries. Entries are safetensors: reading one never runs
code.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from ncviz.cache.store import atomic_write_bytes
from ncviz.errors import DataError, OptionError
from ncviz.load.runs import Task, check_run_fields
from ncviz.metrics import CollapseOptions, CollapseStatistics, RegressionStatistics
from ncviz.metrics.classification import COMPACT_FIELDS

RECORDED_FORMAT = "ncviz-recorded/1"
MAX_STEP = 2**53  # steps are integers a JSON reader keeps exactly
# what one layer's state must hold, with its shape in terms of C (classes), d (features),
# K (classifier rows) and T (regression targets)
Shape = tuple[str | int, ...]
COLLAPSE_FIELDS: dict[str, Shape] = {
    "counts": ("C",),
    "sums": ("C", "d"),
    "kept": ("C",),
    "sq_dist": ("C",),
    "ncc_hits": ("C",),
    "classifier_hits": ("C",),
    "agreement": ("C",),
}
# the within-class scatter: whole (older entries, or when it is the smaller) or compact
FULL_SCATTER_FIELDS: dict[str, Shape] = {"scatter": ("d", "d")}
COMPACT_SCATTER_FIELDS: dict[str, Shape] = dict(
    zip(COMPACT_FIELDS, [("k", "d"), ("k", "k"), ("s",)])
)
CLASSIFIER_FIELDS: dict[str, Shape] = {"weight": ("K", "d"), "bias": ("K",), "class_rows": ("C",)}
REGRESSION_FIELDS: dict[str, Shape] = {
    "count": (1,),
    "feature_sum": ("d",),
    "target_sum": ("T",),
    "unit_sum": ("d",),
    "unit_gram": ("d", "d"),
    "feature_scatter": ("d", "d"),
    "target_scatter": ("T", "T"),
    "zero_rows": (1,),
    "weight": ("T", "d"),
}
COUNT_FIELDS = (
    "counts",
    "count",
    "ncc_hits",
    "classifier_hits",
    "agreement",
    "zero_rows",
    "class_rows",
)
RUN_FILE = "run.json"
ENTRY_SUFFIX = ".safetensors"
SAMPLE_KEY = "sample"
SAMPLE_LABELS = "sample_labels"
# principal directions kept of a layer's sample (the embedding views reduce to 50 first)
SAMPLE_COMPONENTS = 50
SAMPLE_FIELDS = ("sample_coords", "sample_scale", "sample_basis", "sample_mean", "sample_variance")
SPLIT_NAME = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


@dataclass(frozen=True)
class Entry:
    """One capture: the statistics of every layer at ``step`` on ``split``."""

    step: int
    split: str
    file: str
    num_samples: int = 0
    warnings: tuple[str, ...] = ()
    # per layer, scalar rows measured beside the statistics (the Recorder's feature_learning:
    # agop_nfa_corr, geometric_complexity, …), e.g. {"fc:input": {"agop_nfa_corr": 0.9}}
    extra: dict[str, dict[str, float]] = field(default_factory=dict, hash=False)

    @property
    def label(self) -> str:
        """The entry's checkpoint name in tables and pages: ``step 12``."""
        return f"step {self.step}"


@dataclass
class RecordedRun:
    path: Path
    name: str
    task: Task
    layers: list[str]
    classes: list[Any]
    entries: list[Entry]
    classifier: str | None = None
    log: dict[str, list[Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    notes: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def splits(self) -> list[str]:
        """Splits in the order they were first recorded."""
        return list(dict.fromkeys(e.split for e in self.entries))

    @property
    def steps(self) -> list[int]:
        return sorted({e.step for e in self.entries})


@dataclass
class EntryData:
    """The tensors of one entry: ``layers[name]`` = that layer's state (without the sample),
    ``groups[group][name]`` = a group's own state of the layer, ``stored_samples[name]`` = the
    sample as stored (checked; raw rows under ``sample``, or :func:`compress_sample`'s pieces),
    whose rows :attr:`samples` gives when a view asks (metrics never need them)."""

    layers: dict[str, dict[str, torch.Tensor]]
    stored_samples: dict[str, dict[str, torch.Tensor]]
    sample_labels: np.ndarray
    metadata: dict[str, str]
    groups: dict[str, dict[str, dict[str, torch.Tensor]]] = field(default_factory=dict)

    @cached_property
    def samples(self) -> dict[str, np.ndarray]:
        """Each layer's sampled feature rows (float32 when they were stored compressed)."""
        return {
            layer: stored[SAMPLE_KEY].numpy() if SAMPLE_KEY in stored else expand_sample(stored)
            for layer, stored in self.stored_samples.items()
        }


# A group's state of a layer is stored as ``<layer>|group=<group>/<field>`` (group names hold
# neither "|" nor "/"); only write_entry and read_entry know it.
_GROUP_MARK = "|group="


def entry_file_name(step: int, split: str) -> str:
    return f"step-{step:08d}.{split}{ENTRY_SUFFIX}"


def compress_sample(
    rows: np.ndarray, components: int = SAMPLE_COMPONENTS
) -> dict[str, torch.Tensor]:
    """A sample of feature rows (n×d) as its coordinates on its top ``components`` principal
    directions: ``sample_coords`` (n×r float16, each column divided by ``sample_scale`` so that
    it lies in [−1, 1]), ``sample_basis`` (r×d), ``sample_mean`` (d), and ``sample_variance`` =
    (variance kept, total variance). r = min(components, n, d); with r = d only float16 rounding
    is lost. :func:`expand_sample` gives the rows back.

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(200, 3)) @ np.diag([5.0, 1.0, 0.01])
    >>> stored = compress_sample(x, components=2)
    >>> kept, total = stored["sample_variance"].tolist()
    >>> tuple(stored["sample_coords"].shape), kept / total > 0.99999
    ((200, 2), True)
    >>> bool(np.abs(expand_sample(stored) - x).max() < 0.05)
    True
    """
    x = torch.as_tensor(np.asarray(rows), dtype=torch.float64)
    num_rows, dim = x.shape
    mean = x.mean(dim=0) if num_rows else x.new_zeros(dim)
    centred = x - mean
    rank = min(components, num_rows, dim)
    if dim <= num_rows:  # the d×d covariance's eigenvectors (one GEMM and a small solver)
        _, vectors = torch.linalg.eigh(centred.T @ centred)
        basis = vectors.flip(1)[:, :rank].T
    else:  # fewer rows than features: through the rows' own Gram matrix
        _, _, vh = torch.linalg.svd(centred, full_matrices=False)
        basis = vh[:rank]
    coords = centred @ basis.T
    scale = coords.abs().amax(dim=0) if num_rows else coords.new_ones(rank)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return {
        "sample_coords": (coords / scale).to(torch.float16),
        "sample_scale": scale.to(torch.float32),
        "sample_basis": basis.to(torch.float32),
        "sample_mean": mean.to(torch.float32),
        "sample_variance": torch.stack([(coords**2).sum(), (centred**2).sum()]),
    }


def expand_sample(stored: Mapping[str, torch.Tensor]) -> np.ndarray:
    """The feature rows (float32) of a sample kept by :func:`compress_sample`."""
    coords, scale, basis, mean = (stored[k].to(torch.float32) for k in SAMPLE_FIELDS[:4])
    return ((coords * scale) @ basis + mean).numpy()


def write_entry(
    path: Path,
    layer_states: Mapping[str, Mapping[str, torch.Tensor]],
    samples: Mapping[str, np.ndarray],
    sample_labels: np.ndarray,
    metadata: Mapping[str, str],
    group_states: Mapping[str, Mapping[str, Mapping[str, torch.Tensor]]] | None = None,
    sample_components: int | None = SAMPLE_COMPONENTS,
) -> int:
    """Write one entry atomically; returns its size in bytes. ``group_states[group][layer]``:
    each group's own state of a layer (``Recorder(groups=True)``); ``sample_components``: keep
    each sample on that many principal directions (:func:`compress_sample`), or None for the
    raw float32 rows."""
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    stored: set[int] = set()
    named = dict(layer_states)
    for group, per_layer in (group_states or {}).items():
        named.update({f"{layer}{_GROUP_MARK}{group}": state for layer, state in per_layer.items()})
    for name, state in named.items():
        for key, value in state.items():
            value = value.detach().cpu().contiguous()
            if value.data_ptr() in stored:  # one W shared by a layer and its groups
                value = value.clone()
            stored.add(value.data_ptr())
            tensors[f"{name}/{key}"] = value
        if name not in samples:  # a group's statistics have no sample
            continue
        if sample_components is None:
            sample = np.ascontiguousarray(samples[name])
            tensors[f"{name}/{SAMPLE_KEY}"] = torch.from_numpy(sample)
        else:
            stored_sample = compress_sample(samples[name], sample_components)
            tensors.update({f"{name}/{k}": v.contiguous() for k, v in stored_sample.items()})
    tensors[SAMPLE_LABELS] = torch.from_numpy(np.ascontiguousarray(sample_labels))
    data = save(tensors, metadata={"format": RECORDED_FORMAT, **metadata})
    atomic_write_bytes(path, data)
    return len(data)


def read_entry(path: Path) -> EntryData:
    """The tensors of one entry, split by layer; a one-line error for anything unreadable."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except FileNotFoundError:
        raise DataError(f"recorded entry {path.name} is missing from the run folder.") from None
    except Exception as error:
        raise DataError(
            f"{path.name} is not a readable recorded entry ({str(error).splitlines()[0][:80]}); "
            "record the step again."
        ) from None
    if metadata.get("format") != RECORDED_FORMAT:
        raise DataError(f"{path.name} is not an ncviz recorded entry (format {RECORDED_FORMAT}).")
    layers: dict[str, dict[str, torch.Tensor]] = {}
    groups: dict[str, dict[str, dict[str, torch.Tensor]]] = {}
    samples: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key == SAMPLE_LABELS:
            continue
        name, _, field_name = key.rpartition("/")
        layer, mark, group = name.partition(_GROUP_MARK)
        if mark:
            groups.setdefault(group, {}).setdefault(layer, {})[field_name] = value
        elif field_name == SAMPLE_KEY or field_name in SAMPLE_FIELDS:
            samples.setdefault(layer, {})[field_name] = value
        else:
            layers.setdefault(layer, {})[field_name] = value
    for layer, stored in samples.items():
        if SAMPLE_KEY not in stored:
            _check_compressed(stored, f"{path.name}: the sample of layer {layer!r}")
    labels = tensors.get(SAMPLE_LABELS)
    return EntryData(
        layers=layers,
        stored_samples=samples,
        sample_labels=np.zeros(0) if labels is None else labels.numpy(),
        metadata=dict(metadata),
        groups=groups,
    )


def _check_compressed(stored: Mapping[str, torch.Tensor], where: str) -> None:
    """A one-line error unless the pieces of a compressed sample fit together and are finite
    (cheap: the rows themselves are formed only when a view asks for them)."""
    missing = [k for k in SAMPLE_FIELDS if k not in stored]
    if missing:
        raise DataError(f"{where} lacks {missing[0]!r}; record the step again.")
    coords, scale, basis, mean = (stored[k] for k in SAMPLE_FIELDS[:4])
    shapes_fit = (
        coords.ndim == 2
        and basis.ndim == 2
        and scale.shape == (coords.shape[1],)
        and basis.shape[0] == coords.shape[1]
        and mean.shape == (basis.shape[1],)
    )
    if not shapes_fit:
        raise DataError(f"{where} has pieces whose shapes do not fit; record the step again.")
    pieces = (coords, scale, basis, mean)
    if not all(bool(torch.isfinite(t.to(torch.float32)).all()) for t in pieces):
        raise DataError(f"{where} holds NaN or infinite values; record the step again.")


def is_recorded_run(path: str | Path) -> bool:
    """True for a folder whose ``run.json`` says it was written by the Recorder."""
    file = Path(path) / RUN_FILE
    if not file.is_file():
        return False
    try:
        return json.loads(file.read_text()).get("format") == RECORDED_FORMAT
    except (json.JSONDecodeError, OSError, AttributeError):
        return False


def _step(value: Any) -> int:
    """An entry's step: an integer in [0, 2⁵³) (a float that is one is accepted)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("step is not a number")
    if not (math.isfinite(value) and value == int(value) and 0 <= value < MAX_STEP):
        raise ValueError("step is not a whole number in range")
    return int(value)


def _finite(value: Any) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("not finite")
    return number


def _entries(raw: Any, folder: Path) -> list[Entry]:
    if not isinstance(raw, list):
        raise DataError(f"{folder.name}/{RUN_FILE}: 'entries' must be a list of entries.")
    entries = []
    for item in raw:
        try:
            if not isinstance(item.get("warnings", ()), (list, tuple)):
                raise TypeError("warnings is not a list")
            split = str(item["split"])
            if not SPLIT_NAME.fullmatch(split):
                raise ValueError("split is not a plain name")
            entry = Entry(
                step=_step(item["step"]),
                split=split,
                file=Path(str(item["file"])).name,  # never a path outside the run folder
                num_samples=_step(item.get("num_samples", 0)),
                warnings=tuple(item.get("warnings", ())),
                extra={
                    str(layer): {str(k): _finite(v) for k, v in values.items()}
                    for layer, values in dict(item.get("extra") or {}).items()
                },
            )
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
            raise DataError(
                f"{folder.name}/{RUN_FILE} has a malformed entry; each needs step (a whole number "
                "≥ 0), split (a plain name), file, and finite extra values."
            ) from None
        entries.append(entry)
    return sorted(entries, key=lambda e: e.step)


def open_recorded(path: str | Path) -> RecordedRun:
    """Read a recorded run's ``run.json``; entries are sorted by step."""
    folder = Path(path)
    try:
        raw = json.loads((folder / RUN_FILE).read_text())
    except OSError as error:
        raise DataError(f"{folder.name}/{RUN_FILE} cannot be read ({error.strerror}).") from None
    except json.JSONDecodeError as error:
        raise DataError(f"{folder.name}/{RUN_FILE} is not valid JSON ({error.msg}).") from None
    if not isinstance(raw, dict) or raw.get("format") != RECORDED_FORMAT:
        raise DataError(f"{folder.name} is not a recorded run (no format {RECORDED_FORMAT}).")
    check_run_fields(raw, f"{folder.name}/{RUN_FILE}")
    entries = _entries(raw.get("entries", []), folder)
    if not entries:
        raise DataError(
            f"recorded run {folder.name} has no entries yet; call Recorder.capture(...) first."
        )
    return RecordedRun(
        path=folder,
        name=str(raw.get("name") or folder.name),
        task=cast(Task, raw.get("task", "classification")),  # checked above
        layers=list(raw.get("layers", [])),
        classes=list(raw.get("classes", [])),
        entries=entries,
        classifier=raw.get("classifier"),
        log=dict(raw.get("log", {})),
        events=list(raw.get("events", [])),
        notes=str(raw.get("notes", "")),
        options=dict(raw.get("options", {})),
    )


def check_state(state: Mapping[str, torch.Tensor], where: str, task: str, classes: int) -> None:
    """One layer's stored sums are what the statistics need: every field there, shapes that
    agree (C classes — ``classes`` when the run names them —, d features, K classifier rows),
    finite numbers, non-negative whole counts. One line naming the field otherwise."""
    fields = REGRESSION_FIELDS if task == "regression" else COLLAPSE_FIELDS
    required = [k for k in fields if k != "weight"] if task == "regression" else list(fields)
    if task != "regression":
        scatter = COMPACT_SCATTER_FIELDS if "scatter" not in state else FULL_SCATTER_FIELDS
        fields = {**fields, **scatter}
        required += list(scatter)
    missing = [k for k in required if k not in state]
    if missing:
        raise DataError(f"{where} lacks {missing[:3]}; record the step again.")
    if task != "regression" and "weight" in state:
        fields = {**fields, **CLASSIFIER_FIELDS}
        if "class_rows" not in state:
            raise DataError(f"{where}: a classifier weight but no class_rows.")
    sizes: dict[str, int] = {}
    if classes:
        sizes["C"] = classes
    for key, dims in fields.items():
        if key not in state:
            continue
        value = state[key]
        if value.ndim != len(dims):
            raise DataError(f"{where}: {key!r} has {value.ndim} dimensions, expected {len(dims)}.")
        for size, dim in zip(value.shape, dims):
            if isinstance(dim, int):
                ok = size == dim
            else:
                ok = sizes.setdefault(dim, int(size)) == size
            if not ok:
                raise DataError(
                    f"{where}: {key!r} has shape {tuple(value.shape)}, which does not match the "
                    f"other fields ({dim} = {sizes.get(str(dim), dim)}); the entry is inconsistent."
                )
        if value.dtype == torch.bool:
            continue
        if not bool(torch.isfinite(value.to(torch.float64)).all()):
            raise DataError(
                f"{where}: {key!r} holds NaN or infinite values; record the step again."
            )
        if key in COUNT_FIELDS and (value.is_floating_point() or bool((value < 0).any())):
            raise DataError(f"{where}: {key!r} must hold whole numbers ≥ 0.")
    if sizes.get("k", 0) > min(sizes.get("C", 0), sizes.get("d", 0)):
        raise DataError(f"{where}: 'scatter_basis' has more rows than min(C, d).")
    if (
        "class_rows" in state
        and len(state["class_rows"])
        and (int(state["class_rows"].max()) >= sizes.get("K", 0))
    ):
        raise DataError(f"{where}: class_rows points past the classifier's {sizes.get('K')} rows.")


def write_run_file(folder: Path, fields: Mapping[str, Any]) -> None:
    """Write ``run.json`` atomically."""
    text = json.dumps({"format": RECORDED_FORMAT, **fields}, indent=2, default=_jsonable)
    atomic_write_bytes(folder / RUN_FILE, (text + "\n").encode())


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.generic, torch.Tensor)):
        return value.item()
    raise TypeError(f"{type(value).__name__} cannot be written to run.json")


def layer_result(
    state: Mapping[str, torch.Tensor],
    run: RecordedRun,
    where: str = "",
    options: CollapseOptions | None = None,
) -> Any:
    """Every metric of one recorded layer: a ``CollapseResult`` (``options`` as for
    :func:`ncviz.collapse_result`, except ``min_count``, fixed when recording: left at None, or
    the recorded one) or, for a regression run, a ``RegressionResult``."""
    check_state(state, where or "a recorded layer", run.task, len(run.classes))
    options = options or CollapseOptions()
    recorded_min_count = run.options.get("min_count")
    if run.task == "regression":
        return RegressionStatistics.from_state_dict(dict(state)).compute(options)
    stats = CollapseStatistics.from_state_dict(dict(state), min_count=recorded_min_count)
    if options.min_count is not None and options.min_count != recorded_min_count:
        # another min_count (e.g. a convention's) reads the run only if it keeps the same classes
        assert stats.second is not None  # a saved state holds both passes
        if not torch.equal(stats.first.counts >= options.min_count, stats.second.kept):
            raise OptionError(
                f"min_count is fixed when a run is recorded (this run: {recorded_min_count}); "
                "pass min_count to the Recorder instead."
            )
    classes = np.asarray(run.classes) if run.classes else None
    return stats.compute(classes, replace(options, min_count=None))


def group_layer_result(
    state: Mapping[str, torch.Tensor],
    run: RecordedRun,
    where: str = "",
    options: CollapseOptions | None = None,
) -> Any:
    """One group's metrics of a recorded layer (:attr:`EntryData.groups`): classes with fewer than
    2 samples in the group were left out when recording, and ``classes_dropped`` says so."""
    check_state(state, where or "a recorded layer", run.task, len(run.classes))
    recorded = run.options.get("min_count")
    min_count = max(int(recorded or 2), 2)
    stats = CollapseStatistics.from_state_dict(dict(state), min_count=min_count)
    classes = np.asarray(run.classes) if run.classes else None
    return stats.compute(classes, replace(options or CollapseOptions(), min_count=None))


def recorded_sample(
    run: RecordedRun, entry: Entry, layer: str, target: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The sampled feature rows of ``layer`` in one entry of ``run`` and their labels (class
    names, or target number ``target`` for regression) — what the embedding views draw."""
    entry_path = run.path / entry.file
    data = read_entry(entry_path)
    if layer not in data.samples:
        raise DataError(f"recorded entry {entry_path.name} has no sample of layer {layer!r}.")
    labels = data.sample_labels
    if (
        run.task != "regression"
        and len(labels)
        and run.classes
        and (labels.min() < 0 or labels.max() >= len(run.classes))
    ):
        raise DataError(f"{entry_path.name}: sample labels lie outside the run's classes.")
    if run.task == "regression":
        labels = labels.reshape(len(labels), -1)[:, target]
    elif run.classes:
        labels = np.asarray(run.classes)[labels.astype(np.int64)]
    return data.samples[layer], labels
