"""A **run**: a folder with ``run.json`` and checkpoints, ordered by epoch/step.

``run.json`` holds ``model`` (a model spec), ``data`` (a data spec), ``task``
(classification | regression | language), free ``notes``, and optionally a per-epoch ``log``.
Checkpoints are ``*.safetensors`` or ``*.pt``/``*.pth``/``*.ckpt``, ordered by the epoch/step in
the file name or in the safetensors metadata.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from ncviz.errors import DataError, OptionError
from ncviz.load.architectures import ModelSpec
from ncviz.load.checkpoints import CHECKPOINT_SUFFIXES, number_from_name
from ncviz.load.datasets import DataSpec
from ncviz.metrics.options import CollapseOptions

Task = Literal["classification", "regression", "language"]
TASKS: tuple[Task, ...] = ("classification", "regression", "language")
RUN_FILE = "run.json"


@dataclass
class Run:
    path: Path
    name: str
    model: ModelSpec | None
    data: DataSpec | None
    task: Task
    checkpoints: list[Path]
    notes: str = ""
    log: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)


def _safetensors_number(path: Path) -> int | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
        for key in ("epoch", "step"):
            if str(meta.get(key, "")).lstrip("-").isdigit():
                return int(meta[key])
    except Exception:  # unreadable files are reported when they are loaded
        return None
    return None


def checkpoint_sort_key(path: Path) -> tuple[float, str]:
    number = number_from_name(path.name)
    if number is None and path.suffix == ".safetensors":
        number = _safetensors_number(path)
    return (float("inf") if number is None else float(number), path.name)


def list_checkpoints(folder: Path, suffixes: tuple[str, ...] = CHECKPOINT_SUFFIXES) -> list[Path]:
    """The folder's files with one of ``suffixes``, ordered by epoch/step."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes]
    return sorted(files, key=checkpoint_sort_key)


def run_fingerprint(path: str | Path) -> str:
    """A short digest of a run folder's files (names, sizes, modification times; not their
    bytes): it changes when a training run adds a checkpoint or the Recorder an entry (run.json
    is rewritten with it), so a dashboard following the run polls this cheaply — one ``stat``
    per file, nothing read.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     before = run_fingerprint(folder)
    ...     _ = (Path(folder) / "epoch_1.safetensors").write_bytes(b"x")
    ...     before != run_fingerprint(folder)
    True
    """
    digest = hashlib.sha1()
    with os.scandir(path) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.is_file(follow_symlinks=False):
                stat = entry.stat(follow_symlinks=False)
                digest.update(f"{entry.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def is_run(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and ((path / RUN_FILE).is_file() or bool(list_checkpoints(path)))


def open_run(path: str | Path) -> Run:
    """Read a run folder (``run.json`` optional: then model and data must be given elsewhere)."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"run folder {path} does not exist.")
    raw: dict[str, Any] = {}
    if (path / RUN_FILE).is_file():
        try:
            raw = json.loads((path / RUN_FILE).read_text())
        except json.JSONDecodeError as error:
            raise DataError(f"{path.name}/{RUN_FILE} is not valid JSON ({error}).") from None
        if not isinstance(raw, dict):
            raise DataError(f"{path.name}/{RUN_FILE} must hold a JSON object (its fields).")
        check_run_fields(raw, f"{path.name}/{RUN_FILE}")
    task = cast(Task, raw.get("task", "classification"))  # checked by check_run_fields
    checkpoints = list_checkpoints(path)
    if not checkpoints:
        raise DataError(f"run folder {path} holds no checkpoints (*.safetensors, *.pt, *.pth).")
    return Run(
        path=path,
        name=raw.get("name", path.name),
        model=ModelSpec.parse(raw["model"]) if raw.get("model") else None,
        data=DataSpec.parse(raw["data"]) if raw.get("data") else None,
        task=task,
        checkpoints=checkpoints,
        notes=raw.get("notes", ""),
        log=raw.get("log", {}),
        raw=raw,
    )


def run_events(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """Marks for the curves over training from a run.json: its ``events`` (``{"step", "text"}``)
    and the learning-rate milestones of its ``optimizer`` (``lr_milestones``, ``lr_gamma``).

    >>> run_events({"optimizer": {"lr_milestones": [200, 400], "lr_gamma": 0.1}})
    [{'step': 200, 'text': 'lr ×0.1'}, {'step': 400, 'text': 'lr ×0.1'}]
    """
    events = [
        {"step": int(e["step"]), "text": str(e.get("text", ""))[:200]}
        for e in raw.get("events", [])
        if isinstance(e, dict) and isinstance(e.get("step"), int)
    ]
    optimizer = raw.get("optimizer") if isinstance(raw.get("optimizer"), dict) else {}
    gamma = optimizer.get("lr_gamma")
    for step in optimizer.get("lr_milestones") or []:
        if isinstance(step, int):
            events.append({"step": step, "text": f"lr ×{gamma:g}" if gamma else "lr change"})
    return sorted(events, key=lambda e: e["step"])


def check_run_fields(raw: dict[str, Any], where: str) -> None:
    """run.json's fields (of a run of checkpoints or a recorded run) have the types the readers
    rely on; else one line naming the field. Fields this version does not know are allowed."""
    spec = (str, dict)
    expected: dict[str, tuple[type, ...]] = {
        "name": (str,),
        "task": (str,),
        "layers": (list,),
        "classes": (list,),
        "log": (dict,),
        "events": (list,),
        "notes": (str,),
        "options": (dict,),
        "classifier": (str, type(None)),
        "model": spec,
        "data": spec,
        "train_data": spec,
        "test_data": spec,
        "metric_options": (dict,),
        "centres": (str,),
        "partner": (str,),
        "sweep": (str,),
    }
    for key, types in expected.items():
        if key in raw and not isinstance(raw[key], types):
            kind = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise DataError(f"{where}: '{key}' must be a {kind}; fix it or write the run again.")
    if raw.get("task", "classification") not in TASKS:
        raise DataError(f"{where}: task must be one of {TASKS}, got {raw['task']!r}.")
    if "metric_options" in raw:
        try:
            CollapseOptions.from_kwargs(**raw["metric_options"])
        except OptionError as error:
            raise DataError(f"{where}: metric_options: {error}") from None
    if not all(isinstance(layer, str) for layer in raw.get("layers", [])):
        raise DataError(f"{where}: 'layers' must list module names (strings).")
    if not all(
        isinstance(c, (str, int)) and not isinstance(c, bool) for c in raw.get("classes", [])
    ):
        raise DataError(f"{where}: 'classes' must list class names (strings or integers).")
    if not all(isinstance(values, list) for values in raw.get("log", {}).values()):
        raise DataError(f"{where}: every 'log' entry must be a list of values.")
    if not all(isinstance(event, dict) for event in raw.get("events", [])):
        raise DataError(f"{where}: 'events' must be a list of objects.")
    min_count = raw.get("options", {}).get("min_count")
    if min_count is not None and (
        isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1
    ):
        raise DataError(f"{where}: options.min_count must be a whole number ≥ 1 or null.")


def write_run_json(folder: str | Path, **fields: Any) -> Path:
    """Write ``run.json`` (model/data specs given as objects are stored as dicts)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    serial = {k: (v.to_dict() if hasattr(v, "to_dict") else v) for k, v in fields.items()}
    path = folder / RUN_FILE
    path.write_text(json.dumps(serial, indent=2) + "\n")
    return path
