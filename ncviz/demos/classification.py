"""The bundled demo runs: small real networks trained on scikit-learn's digits, checkpointed at
log-spaced epochs so that collapse can be watched as it happens.

Plain training code: a settings dataclass per run, one loop, checkpoints written as it goes,
fixed seeds, CPU. ``ncviz demo`` (re)creates every run in ``checkpoints/`` in a few minutes;
``--epochs`` shrinks the budget for a smoke test.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ncviz.demos.common import ProgressFn, fresh_run_folder, simplex_etf_head
from ncviz.load import build_model, load_dataset, save_safetensors
from ncviz.load.datasets import DataSpec
from ncviz.load.runs import write_run_json
from ncviz.metrics.multicentre import class_aware_counts, ncmc_centres

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
    partner: str | None = None  # the run this one is meant to be compared with (run.json)
    sweep: str | None = None  # the sweep this run belongs to (run.json)


def _imbalanced(ratio: int, final_only: bool) -> DemoSettings:
    name = "digits-mlp-imbalanced" + (f"-R{ratio}" if final_only else "")
    return DemoSettings(
        name=name,
        model={"name": "mlp", "kwargs": MLP},
        train_data=f"builtin:digits?imbalance=step:5:{ratio}" if ratio > 1 else "builtin:digits",
        eval_data="builtin:digits",
        test_data="builtin:digits?split=test",
        final_only=final_only,
        sweep="digits-mlp-imbalanced",
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
    name, twin = f"digits-deq-R{ratio}", f"digits-mlp-tanh-R{ratio}"
    if not implicit:
        name, twin = twin, name
    what = (
        "a tiny DEQ, z* = tanh(A z* + U x + b) with ‖A‖₂ ≤ 0.9, fixed-point iteration and "
        "one-step (truncated) backprop"
        if implicit
        else "the DEQ's explicit twin: two tanh layers of the same width"
    )
    return DemoSettings(
        name=name,
        model={"name": "tiny_deq", "kwargs": DEQ} if implicit else {"name": "mlp", "kwargs": TWIN},
        train_data=f"builtin:digits?imbalance=step:5:{ratio}",
        eval_data="builtin:digits",
        test_data="builtin:digits?split=test",
        epochs=300,
        checkpoints=12,
        partner=twin,
        sweep="digits-deq" if implicit else "digits-mlp-tanh",
        metric_options={"minority_classes": MINORITY},
        notes=f"{what.capitalize()}, trained on digits with classes 5–9 kept at 1/{ratio}. "
        "Measured on the balanced training split, whose minority images the model mostly never "
        "saw: accuracy_minority is how well the rare classes generalise.",
    )


def _longtail(head: str) -> DemoSettings:
    how = {
        "learned": "a learned linear head (cross-entropy)",
        "etf": "the head fixed to a simplex ETF (cross-entropy)",
        "ncmc": "the head fixed to the ETF's class directions and NCMC's Cosine Loss: each "
        "sample's mean cosine to its class's fixed centres w_kj = cos θ v_kj + sin θ w_k "
        f"(θ = {NCMC_THETA}), f_k of them by the class-aware rule — {NCMC_CENTRES} for the "
        "largest class, more for rarer ones (centres.npy) — so a class collapses to the mean of "
        "its centres",
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
        partner="digits-longtail-ncmc" if head == "learned" else "digits-longtail-learned",
        notes=f"Long-tailed digits (class c keeps 20^(−c/9) of its images: 135 → 6); {how}. "
        "Measured on the long-tailed training split: the Imbalance page's 'NCMC · sub-clusters' "
        "tab finds each class's sub-clusters against its size"
        + (
            " and NCMC's collapse to each class's centre-mean. The paper's direction does not "
            "appear on digits: on the balanced test split this head reaches accuracy 0.786 and "
            "tail recall 0.698 (classes 3–9, under half the largest class's training images), "
            "the learned cross-entropy head 0.846 and 0.784 (benchmarks/ncmc_longtail.py)."
            if head == "ncmc"
            else "."
        ),
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


def _fix_head(model: nn.Module, head: str, seed: int, counts: np.ndarray) -> torch.Tensor | None:
    """Fix the classifier for ``head`` "etf" (a simplex ETF) or "ncmc" (the ETF's directions,
    with NCMC's centres returned for the Cosine Loss: f_k per class by
    :func:`~ncviz.metrics.multicentre.class_aware_counts` of the training ``counts``, NaN rows
    where a class has fewer than the most); "learned" leaves it alone."""
    if head == "learned":
        return None
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
    per_class = class_aware_counts(counts, NCMC_CENTRES)
    targets = ncmc_centres(etf.numpy(), per_class, NCMC_THETA, seed)
    return torch.from_numpy(targets).float()


def cosine_loss(
    features: torch.Tensor, labels: torch.Tensor, centres: torch.Tensor
) -> torch.Tensor:
    """NCMC's Cosine Loss to fixed targets: mean over samples of
    1 − (1/f_k) Σ_j cos(h_i, w_kj), k = y_i, over class k's f_k unit centres (``centres``
    C×f×d, NaN rows padding classes with fewer). The average cosine is ⟨h_i/‖h_i‖, c̄_k⟩ with
    c̄_k the mean of the centres, so a class is pulled towards its centre-mean (NCMC)."""
    valid = ~torch.isnan(centres).any(dim=2, keepdim=True)
    centre_means = torch.where(valid, centres, 0.0).sum(dim=1) / valid.sum(dim=1)
    unit = features / features.norm(dim=1, keepdim=True).clamp(min=1e-12)
    return (1.0 - (unit * centre_means[labels]).sum(dim=1)).mean()


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
    counts = (
        np.bincount(train.labels.numpy(), minlength=train.num_classes) if not regression else None
    )
    centres = None if counts is None else _fix_head(model, settings.head, settings.seed, counts)
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
        "epoch": [],
        "train_loss": [],
        "train_acc": [],
        "test_loss": [],
        "test_acc": [],
    }
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
                    loss = cosine_loss(captured["h"], target[batch], centres)
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
            save_safetensors(
                model.state_dict(), folder / f"epoch_{epoch:04d}.safetensors", epoch=epoch
            )
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
        **({"partner": settings.partner} if settings.partner else {}),
        **({"sweep": settings.sweep} if settings.sweep else {}),
        log={
            k: [None if isinstance(v, float) and math.isnan(v) else v for v in values]
            for k, values in log.items()
        },
    )
    return folder
