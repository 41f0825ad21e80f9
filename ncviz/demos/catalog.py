"""The bundled runs as the dashboard sees them: where they are, their order, and how they
relate — read from each run's ``run.json`` (``partner``: the run it is meant to be compared
with; ``sweep``: the sweep it belongs to), never guessed from names. No training code here."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "checkpoints"
RUN_FILE = "run.json"
# the order the Source page lists them in (the demo's training order; digits-mlp first)
RUN_ORDER = (
    "digits-mlp",
    "digits-mlp-imbalanced",
    "digits-mlp-imbalanced-R1",
    "digits-mlp-imbalanced-R10",
    "digits-mlp-imbalanced-R100",
    "digits-cnn",
    "digits-regression",
    "digits-regression-wd0",
    "digits-deq-R10",
    "digits-mlp-tanh-R10",
    "digits-deq-R50",
    "digits-mlp-tanh-R50",
    "digits-longtail-learned",
    "digits-longtail-etf",
    "digits-longtail-ncmc",
)


def bundled_runs_dir() -> Path:
    """Where the bundled runs live: ``$NCVIZ_DEMO_DIR``, else the repository's checkpoints/, else
    the installed wheel's ``ncviz_demo_runs`` (the same runs, as package data)."""
    if value := os.environ.get("NCVIZ_DEMO_DIR"):
        return Path(value)
    if DEFAULT_DIR.is_dir():
        return DEFAULT_DIR
    return installed_folder("ncviz_demo_runs") or DEFAULT_DIR


def installed_folder(package: str) -> Path | None:
    """The folder of a data-only package the wheel installs (``ncviz_demo_runs``,
    ``ncviz_dashboard``: no ``__init__.py``, found as namespace packages), None if absent."""
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]) if locations else None


def is_bundled(source: str | Path) -> bool:
    """True for a bundled run (our own files, trusted: its jobs may run in the server's own
    process); anything else is user input."""
    return Path(source).parent == bundled_runs_dir()


def bundled_runs() -> list[str]:
    """Names of the bundled runs present on disk, in :data:`RUN_ORDER` (others after, sorted)."""
    folder = bundled_runs_dir()
    present = (
        {p.name for p in folder.iterdir() if (p / RUN_FILE).is_file()} if folder.is_dir() else set()
    )
    ordered = [name for name in RUN_ORDER if name in present]
    return ordered + sorted(present - set(ordered))


def run_fields(name: str) -> dict[str, Any]:
    """A bundled run's ``run.json`` ({} when it is not there)."""
    path = bundled_runs_dir() / name / RUN_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def comparison_partner(name: str) -> str | None:
    """The bundled run ``name`` is meant to be compared with (a DEQ with its explicit twin, ERM
    with the aligned model, a long-tailed head with the learned one): its run.json ``partner``
    when that run is bundled too, else None."""
    partner = run_fields(name).get("partner")
    return partner if isinstance(partner, str) and partner in bundled_runs() else None


def sweep_family(name: str) -> list[str]:
    """The bundled runs that share run.json ``sweep`` with ``name`` (e.g. the imbalance sweep
    R = 1…100), in catalog order, when there are at least two; else none."""
    sweep = run_fields(name).get("sweep")
    if not sweep:
        return []
    members = [run for run in bundled_runs() if run_fields(run).get("sweep") == sweep]
    return members if len(members) >= 2 else []
