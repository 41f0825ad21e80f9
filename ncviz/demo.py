"""The bundled demo runs: small real networks trained on scikit-learn's digits, checkpointed at
log-spaced epochs so that collapse can be watched as it happens.

Plain training code: a settings dataclass per run, one loop, checkpoints written as it goes,
fixed seeds, CPU. ``ncviz demo`` (re)creates every run in ``checkpoints/`` in a few minutes;
``--epochs`` shrinks the budget for a smoke test.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ncviz.load import build_model, load_dataset, save_safetensors
from ncviz.load.datasets import DataSpec
from ncviz.load.runs import write_run_json

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "checkpoints"
MLP = {"in_features": 64, "num_classes": 10, "widths": [128, 128, 128], "batchnorm": True}
MINORITY = [5, 6, 7, 8, 9]  # the step profile step:5:R keeps classes 0–4 whole


@dataclass(frozen=True)
class DemoSettings:
    """One demo run: model, data, optimiser (SGD + momentum, lr ÷10 at 1/3 and 2/3)."""

    name: str
    model: dict[str, Any]
    train_data: str
    eval_data: str  # what the dashboard analyses (the balanced training split)
    test_data: str
    task: str = "classification"
    epochs: int = 600
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-3
    checkpoints: int = 25  # log-spaced epochs, epoch 0 and the last included
    final_only: bool = False
    seed: int = 0
    metric_options: dict[str, Any] = field(default_factory=dict)
    notes: str = ""


def _imbalanced(ratio: int, final_only: bool) -> DemoSettings:
    name = "digits-mlp-imbalanced" + (f"-R{ratio}" if final_only else "")
    return DemoSettings(
        name=name,
        model={"name": "mlp", "kwargs": MLP},
        train_data=f"builtin:digits?imbalance=step:5:{ratio}" if ratio > 1 else "builtin:digits",
        eval_data="builtin:digits",
        test_data="builtin:digits?split=test",
        final_only=final_only,
        metric_options={"minority_classes": MINORITY},
        notes=f"Step imbalance: classes 0–4 keep all ~140 training images, classes 5–9 1/{ratio} "
        "of them (Fang et al. 2021). Metrics are measured on the balanced training split so "
        "that every class has samples; minority collapse shows in W (minority_cos).",
    )


def demo_runs() -> list[DemoSettings]:
    """Every bundled run, in the order they are trained."""
    regression = DemoSettings(
        name="digits-regression",
        model={
            "name": "mlp",
            "kwargs": {"in_features": 64, "num_classes": 3, "widths": [128, 128]},
        },
        train_data="builtin:digits?target=pca:3",
        eval_data="builtin:digits?target=pca:3",
        test_data="builtin:digits?target=pca:3&split=test",
        task="regression",
        lr=0.01,
        weight_decay=1e-2,
        notes="MSE regression of 3 correlated targets (tanh of mixed principal components of "
        "the images) with weight decay: neural regression collapse (Andriopoulos et al. 2024).",
    )
    return [
        DemoSettings(
            name="digits-mlp",
            model={"name": "mlp", "kwargs": MLP},
            train_data="builtin:digits",
            eval_data="builtin:digits",
            test_data="builtin:digits?split=test",
            notes="Balanced digits, SGD + weight decay far into the terminal phase of training "
            "(the Papyan, Han & Donoho 2020 setting).",
        ),
        _imbalanced(50, final_only=False),
        *(_imbalanced(r, final_only=True) for r in (1, 10, 100)),
        DemoSettings(
            name="digits-cnn",
            model={"name": "cnn", "kwargs": {"in_channels": 1, "num_classes": 10, "image_size": 8}},
            train_data="builtin:digits?shape=image",
            eval_data="builtin:digits?shape=image",
            test_data="builtin:digits?shape=image&split=test",
            epochs=300,
            notes="A small CNN on digits as 1×8×8 images: collapse across conv blocks.",
        ),
        regression,
        replace(
            regression,
            name="digits-regression-wd0",
            weight_decay=0.0,
            notes="The same regression without weight decay: no regression collapse.",
        ),
    ]


def checkpoint_epochs(epochs: int, count: int) -> list[int]:
    """``count`` log-spaced epochs from 0 to ``epochs`` (fewer if the budget is shorter)."""
    if count <= 2 or epochs <= 1:
        return sorted({0, epochs}) if count > 1 else [epochs]
    for grid in range(count - 1, 4 * count):
        values = np.unique(np.round(np.geomspace(1, epochs, grid)).astype(int))
        if len(values) >= count - 1:
            break
    return [0, *[int(v) for v in values[-(count - 1) :]]]


def _evaluate(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor, task: str):
    model.eval()
    with torch.no_grad():
        output = model(inputs)
    model.train()
    if task == "regression":
        return float(nn.functional.mse_loss(output, target)), None
    loss = float(nn.functional.cross_entropy(output, target))
    return loss, float((output.argmax(dim=1) == target).float().mean())


ProgressFn = Callable[[str, int, int], None]


def train_run(
    settings: DemoSettings, out_dir: str | Path, progress: ProgressFn | None = None
) -> Path:
    """Train one run and write its folder: run.json + epoch_XXXX.safetensors checkpoints."""
    folder = Path(out_dir) / settings.name
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.safetensors"):
        old.unlink()
    torch.manual_seed(settings.seed)
    train = load_dataset(settings.train_data)
    test = load_dataset(settings.test_data)
    regression = settings.task == "regression"
    target = train.targets if regression else train.labels
    test_target = test.targets if regression else test.labels
    model = build_model(settings.model).train()
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=settings.lr,
        momentum=settings.momentum,
        weight_decay=settings.weight_decay,
    )
    milestones = [settings.epochs // 3, 2 * settings.epochs // 3]
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=0.1)
    loss_fn = nn.functional.mse_loss if regression else nn.functional.cross_entropy
    saves = (
        [settings.epochs]
        if settings.final_only
        else checkpoint_epochs(settings.epochs, settings.checkpoints)
    )
    log: dict[str, list[float | None]] = {
        "epoch": [], "train_loss": [], "train_acc": [], "test_loss": [], "test_acc": []
    }  # fmt: skip
    generator = torch.Generator().manual_seed(settings.seed)
    for epoch in range(settings.epochs + 1):
        if epoch > 0:
            order = torch.randperm(len(train), generator=generator)
            for start in range(0, len(train), settings.batch_size):
                batch = order[start : start + settings.batch_size]
                if len(batch) < 2:  # BatchNorm needs two samples
                    continue
                loss = loss_fn(model(train.inputs[batch]), target[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            scheduler.step()
        train_loss, train_acc = _evaluate(model, train.inputs, target, settings.task)
        test_loss, test_acc = _evaluate(model, test.inputs, test_target, settings.task)
        for key, value in zip(log, (epoch, train_loss, train_acc, test_loss, test_acc)):
            log[key].append(value)
        if epoch in saves:
            model.eval()
            save_safetensors(model.state_dict(), folder / f"epoch_{epoch:04d}.safetensors",
                             epoch=epoch)  # fmt: skip
            model.train()
        if progress is not None:
            progress(settings.name, epoch, settings.epochs)
    write_run_json(
        folder,
        name=settings.name,
        model=settings.model,
        data=DataSpec.parse(settings.eval_data).to_dict(),
        train_data=DataSpec.parse(settings.train_data).to_dict(),
        test_data=DataSpec.parse(settings.test_data).to_dict(),
        task=settings.task,
        optimizer={
            k: v
            for k, v in asdict(settings).items()
            if k in ("epochs", "batch_size", "lr", "momentum", "weight_decay", "seed")
        }
        | {"name": "SGD", "lr_milestones": milestones, "lr_gamma": 0.1},
        metric_options=settings.metric_options,
        notes=settings.notes,
        log={
            k: [None if isinstance(v, float) and math.isnan(v) else v for v in values]
            for k, values in log.items()
        },
    )
    return folder


def make_demo(
    out_dir: str | Path = DEFAULT_DIR,
    names: list[str] | None = None,
    epochs: int | None = None,
    checkpoints: int | None = None,
    progress: ProgressFn | None = None,
) -> list[Path]:
    """Train the demo runs (all, or ``names``); ``epochs``/``checkpoints`` override the budget
    (for the language run ``epochs`` counts optimiser steps)."""
    from ncviz.demo_environments import ENV_RUNS, environment_runs, train_environment_run
    from ncviz.demo_language import LANGUAGE_RUN, LanguageDemoSettings, train_language_run
    from ncviz.transfer import TRANSFER_SWEEP, train_transfer_sweep

    runs = demo_runs()
    extra = [LANGUAGE_RUN, TRANSFER_SWEEP, *ENV_RUNS]
    if names:
        unknown = set(names) - {r.name for r in runs} - set(extra)
        if unknown:
            from ncviz.errors import OptionError

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


def bundled_runs_dir() -> Path:
    """Where the bundled runs live: ``$NCVIZ_DEMO_DIR``, else the repository's checkpoints/."""
    import os

    return Path(os.environ.get("NCVIZ_DEMO_DIR", DEFAULT_DIR))


def bundled_runs() -> list[str]:
    """Names of the bundled runs present on disk, in the demo's order (digits-mlp first)."""
    folder = bundled_runs_dir()
    present = (
        {p.name for p in folder.iterdir() if (p / "run.json").is_file()}
        if folder.is_dir()
        else set()
    )
    ordered = [s.name for s in demo_runs() if s.name in present]
    return ordered + sorted(present - set(ordered))
