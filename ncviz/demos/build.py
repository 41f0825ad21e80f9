"""``ncviz demo``: train every bundled run (or some of them) into a folder."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ncviz.demos.catalog import DEFAULT_DIR
from ncviz.demos.classification import demo_runs, train_run
from ncviz.demos.common import ProgressFn
from ncviz.demos.environments import ENV_RUNS, environment_runs, train_environment_run
from ncviz.demos.language import LANGUAGE_RUN, LanguageDemoSettings, train_language_run
from ncviz.errors import OptionError
from ncviz.transfer import TRANSFER_SWEEP, train_transfer_sweep


def make_demo(
    out_dir: str | Path = DEFAULT_DIR,
    names: list[str] | None = None,
    epochs: int | None = None,
    checkpoints: int | None = None,
    progress: ProgressFn | None = None,
) -> list[Path]:
    """Train the demo runs (all, or ``names``); ``epochs``/``checkpoints`` override the budget
    (for the language run ``epochs`` counts optimiser steps)."""
    runs = demo_runs()
    extra = [LANGUAGE_RUN, TRANSFER_SWEEP, *ENV_RUNS]
    if names:
        unknown = set(names) - {r.name for r in runs} - set(extra)
        if unknown:
            known = [r.name for r in runs] + extra
            raise OptionError(f"unknown demo run(s) {sorted(unknown)}; choose from {known}.")
        runs = [r for r in runs if r.name in names]
    folders = []
    for settings in runs:
        if epochs is not None:
            settings = replace(settings, epochs=epochs)
        if checkpoints is not None:
            settings = replace(settings, checkpoints=checkpoints)
        folders.append(train_run(settings, out_dir, progress))
    if not names or LANGUAGE_RUN in names:
        language = LanguageDemoSettings()
        if epochs is not None:  # the budget in optimiser steps
            saves = (*[s for s in language.checkpoints if s < epochs], epochs)
            language = replace(language, steps=epochs, checkpoints=saves)
        folders.append(train_language_run(out_dir, language, progress))
    if not names or TRANSFER_SWEEP in names:
        folders.append(train_transfer_sweep(out_dir, progress=progress))
    for environment in environment_runs():
        if not names or environment.name in names:
            if epochs is not None:  # full-batch steps
                saves = (*[s for s in environment.checkpoints if s < epochs], epochs)
                environment = replace(environment, steps=epochs, checkpoints=saves)
            folders.append(train_environment_run(environment, out_dir, progress))
    return folders
