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
    # "learned"; "etf": the classifier fixed to a simplex ETF (cross-entropy); "ncmc": fixed to
    # the class directions and trained by a cosine loss to NCMC's multiple centres per class
    head: str = "learned"


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


DEQ = {"in_features": 64, "num_classes": 10, "width": 64}
TWIN = {"in_features": 64, "num_classes": 10, "widths": [64, 64], "activation": "tanh"}
LONGTAIL = {"in_features": 64, "num_classes": 10, "widths": [128, 64], "activation": "tanh"}


def _implicit(ratio: int, implicit: bool) -> DemoSettings:
    """A tiny DEQ, or its explicit twin (two tanh layers of the same width), under step
    imbalance R (arXiv 2410.23391: DEQs mitigate minority collapse)."""
    name = f"digits-deq-R{ratio}" if implicit else f"digits-mlp-tanh-R{ratio}"
    what = ("a tiny DEQ, z* = tanh(A z* + U x + b) with ‖A‖₂ ≤ 0.9, fixed-point iteration and "
            "one-step (truncated) backprop" if implicit
            else "the DEQ's explicit twin: two tanh layers of the same width")  # fmt: skip
    return DemoSettings(
        name=name,
        model={"name": "tiny_deq", "kwargs": DEQ} if implicit else {"name": "mlp", "kwargs": TWIN},
        train_data=f"builtin:digits?imbalance=step:5:{ratio}",
        eval_data="builtin:digits",
        test_data="builtin:digits?split=test",
        epochs=300,
        checkpoints=12,
        metric_options={"minority_classes": MINORITY},
        notes=f"{what.capitalize()}, trained on digits with classes 5–9 kept at 1/{ratio}. "
        "Measured on the balanced training split, whose minority images the model mostly never "
        "saw: accuracy_minority is how well the rare classes generalise.",
    )


def _longtail(head: str) -> DemoSettings:
    how = {
        "learned": "a learned linear head (cross-entropy)",
        "etf": "the head fixed to a simplex ETF (cross-entropy)",
        "ncmc": f"the head fixed to the ETF's class directions and a cosine loss pulling each "
        f"sample to the nearest of its class's {NCMC_CENTRES} fixed centres "
        f"w_kj = cos θ v_kj + sin θ w_k, θ = {NCMC_THETA} (NCMC; targets in centres.npy)",
    }[head]
    return DemoSettings(
        name=f"digits-longtail-{head}",
        model={"name": "mlp", "kwargs": LONGTAIL},
        train_data="builtin:digits?imbalance=longtail:20",
        eval_data="builtin:digits?imbalance=longtail:20",
        test_data="builtin:digits?split=test",
        epochs=300,
        checkpoints=12,
        head=head,
        notes=f"Long-tailed digits (class c keeps 20^(−c/9) of its images: 135 → 6); {how}. "
        "Measured on the long-tailed training split: the Imbalance page's multi-centre tab "
        "finds each class's sub-clusters against its size.",
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
        *(_implicit(ratio, implicit) for ratio in (10, 50) for implicit in (True, False)),
        *(_longtail(head) for head in ("learned", "etf", "ncmc")),
    ]


CENTRES_FILE = "centres.npy"  # a run's fixed NCMC targets (C×f×d float32), named in run.json
NCMC_CENTRES, NCMC_THETA = 20, 0.2  # the paper's defaults: f centres per class, angle θ


def _fix_head(model: nn.Module, head: str, seed: int) -> torch.Tensor | None:
    """Fix the classifier for ``head`` "etf" (a simplex ETF) or "ncmc" (the ETF's directions,
    with NCMC's centres returned for the cosine loss); "learned" leaves it alone."""
    if head == "learned":
        return None
    from ncviz.demo_environments import simplex_etf_head
    from ncviz.metrics.multicentre import ncmc_centres

    classifier = model.classifier
    etf = simplex_etf_head(classifier.out_features, classifier.in_features, 1.0, seed)
    with torch.no_grad():
        classifier.weight.copy_(etf)
        if classifier.bias is not None:
            classifier.bias.zero_()
    for parameter in classifier.parameters():
        parameter.requires_grad_(False)
    if head == "etf":
        return None
    targets = ncmc_centres(etf.numpy(), NCMC_CENTRES, NCMC_THETA, seed)
    return torch.from_numpy(targets).float()


def nearest_centre_loss(
    features: torch.Tensor, labels: torch.Tensor, centres: torch.Tensor
) -> torch.Tensor:
    """NCMC's cosine loss to fixed targets: mean over samples of 1 − max_j cos(h_i, w_{y_i j}),
    each sample pulled to the nearest centre of its own class (``centres`` C×f×d, unit)."""
    unit = features / features.norm(dim=1, keepdim=True).clamp(min=1e-12)
    cosines = torch.einsum("nd,nfd->nf", unit, centres[labels])
    return (1.0 - cosines.max(dim=1).values).mean()


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


def fresh_run_folder(out_dir: str | Path, name: str, seed: int) -> Path:
    """``out_dir/name`` created and emptied of old checkpoints, torch seeded: where every demo
    trainer starts."""
    folder = Path(out_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.safetensors"):
        old.unlink()
    torch.manual_seed(seed)
    return folder


def train_run(
    settings: DemoSettings, out_dir: str | Path, progress: ProgressFn | None = None
) -> Path:
    """Train one run and write its folder: run.json + epoch_XXXX.safetensors checkpoints."""
    folder = fresh_run_folder(out_dir, settings.name, settings.seed)
    train = load_dataset(settings.train_data)
    test = load_dataset(settings.test_data)
    regression = settings.task == "regression"
    target = train.targets if regression else train.labels
    test_target = test.targets if regression else test.labels
    model = build_model(settings.model).train()
    centres = _fix_head(model, settings.head, settings.seed)
    captured: dict[str, torch.Tensor] = {}
    if centres is not None:  # the cosine loss reads the classifier's input
        np.save(folder / CENTRES_FILE, centres.numpy(), allow_pickle=False)
        model.classifier.register_forward_hook(lambda m, i, o: captured.__setitem__("h", i[0]))
    optimizer = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad],
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
                output = model(train.inputs[batch])
                if centres is None:
                    loss = loss_fn(output, target[batch])
                else:
                    loss = nearest_centre_loss(captured["h"], target[batch], centres)
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
        **({"centres": CENTRES_FILE} if centres is not None else {}),
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


def comparison_partner(name: str) -> str | None:
    """The bundled run a bundled run is meant to be compared with (a DEQ with its explicit
    twin, ERM with the aligned model, a long-tailed head with the learned one), or None.

    >>> comparison_partner("digits-deq-R50"), comparison_partner("digits-env-aligned")
    ('digits-mlp-tanh-R50', 'digits-env-erm')
    """
    import re

    pairs = {"digits-env-erm": "digits-env-aligned", "digits-env-aligned": "digits-env-erm",
             "digits-longtail-learned": "digits-longtail-ncmc"}  # fmt: skip
    if name in pairs:
        return pairs[name]
    if match := re.fullmatch(r"digits-(deq|mlp-tanh)-R(\d+)", name):
        other = "mlp-tanh" if match[1] == "deq" else "deq"
        return f"digits-{other}-R{match[2]}"
    if name.startswith("digits-longtail-"):
        return "digits-longtail-learned"
    return None


def bundled_runs_dir() -> Path:
    """Where the bundled runs live: ``$NCVIZ_DEMO_DIR``, else the repository's checkpoints/."""
    import os

    return Path(os.environ.get("NCVIZ_DEMO_DIR", DEFAULT_DIR))


def is_bundled(source: str | Path) -> bool:
    """True for a bundled run (our own files, trusted: its jobs may run in the server's own
    process); anything else is user input."""
    return Path(source).parent == bundled_runs_dir()


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
