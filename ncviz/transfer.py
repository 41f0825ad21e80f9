"""Few-shot transfer of collapsed features to new classes (Munn, Dherin & Gonzalvo 2024,
arXiv 2405.15706; Galanti et al. 2022).

A model trained on source classes embeds samples of held-out target classes (the classifier's
input). With k labelled examples per target class, the nearest class mean (NCM) of those examples
classifies the rest; the k-shot accuracy is averaged over random episodes. Munn et al. bound the
target CDNV by the source geometric complexity: lower source GC → lower target CDNV → higher
few-shot accuracy. The bundled sweep (:func:`train_transfer_sweep`) pre-trains MLPs on digits 0–4
with several learning rates, batch sizes, weight decays and GC penalties and transfers to 5–9.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from ncviz.demos.catalog import bundled_runs_dir
from ncviz.errors import InputError
from ncviz.extract.layers import INPUT_SUFFIX
from ncviz.feature_learning import _embedding_fn, geometric_complexity
from ncviz.load import build_model, load_dataset, save_safetensors
from ncviz.metrics import collapse_metrics

SWEEP_FILE = "transfer.csv"
TRANSFER_SWEEP = "digits-transfer"  # the bundled sweep's folder under checkpoints/
SHOTS = (1, 5)


def few_shot_accuracy(
    features: np.ndarray | torch.Tensor,
    labels: np.ndarray,
    shots: int,
    *,
    episodes: int = 100,
    seed: int = 0,
) -> tuple[float, float]:
    """Mean and standard deviation over ``episodes`` of the nearest-class-mean accuracy with
    ``shots`` random support examples per class (the other samples are the queries).

    >>> x = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [5.2]])
    >>> few_shot_accuracy(x, np.array([0, 0, 0, 1, 1, 1]), shots=1, episodes=5)
    (1.0, 0.0)
    """
    h = np.asarray(features, dtype=np.float64).reshape(len(labels), -1)
    labels = np.asarray(labels)
    classes = np.unique(labels)
    members = [np.flatnonzero(labels == c) for c in classes]
    if min(len(m) for m in members) <= shots:
        raise InputError(f"every class needs more than {shots} samples for {shots}-shot episodes.")
    rng = np.random.default_rng(seed)
    accuracies = []
    for _ in range(episodes):
        support = [rng.choice(m, shots, replace=False) for m in members]
        centres = np.stack([h[s].mean(axis=0) for s in support])
        query = np.setdiff1d(np.arange(len(labels)), np.concatenate(support))
        distances = ((h[query, None, :] - centres[None]) ** 2).sum(axis=2)
        accuracies.append(float((classes[distances.argmin(axis=1)] == labels[query]).mean()))
    return float(np.mean(accuracies)), float(np.std(accuracies))


def transfer_row(
    model: nn.Module,
    source_inputs: torch.Tensor,
    target_inputs: torch.Tensor,
    target_labels: np.ndarray,
    *,
    layer: str | None = None,
    gc_samples: int = 500,
    episodes: int = 100,
) -> dict[str, float]:
    """Source GC (exact, on at most ``gc_samples`` source inputs), target CDNV and NC1 trace
    ratio of the embedding of the target classes, and k-shot NCM accuracy (mean, sd) for
    k = 1, 5."""
    if layer is None:
        from ncviz.load.architectures import classifier_module

        layer = classifier_module(model)[0] + INPUT_SUFFIX
    model.eval()
    gc = geometric_complexity(model, source_inputs[:gc_samples], layer=layer).value
    with torch.no_grad():
        embedding = _embedding_fn(model, layer)(target_inputs).double().numpy()
    target = collapse_metrics(embedding, target_labels)
    row = {
        "source_gc": gc,
        "target_cdnv": target["cdnv"],
        "target_nc1_trace_ratio": target["nc1_trace_ratio"],
    }
    for shots in SHOTS:
        mean, sd = few_shot_accuracy(embedding, target_labels, shots, episodes=episodes)
        row[f"shot{shots}_acc"], row[f"shot{shots}_acc_sd"] = mean, sd
    return row


@dataclass(frozen=True)
class SourceSettings:
    """One pre-training run on the source classes (SGD + momentum, cross-entropy; with
    ``gc_penalty`` > 0, plus that times a one-sample Hutchinson estimate of the batch's GC)."""

    name: str
    lr: float = 0.05
    batch_size: int = 64
    weight_decay: float = 5e-4
    gc_penalty: float = 0.0
    epochs: int = 100
    seed: int = 0


def default_sweep() -> list[SourceSettings]:
    """The bundled sweep: learning rate, batch size, weight decay and GC penalty varied."""
    return [
        SourceSettings("base"),
        SourceSettings("lr0.01", lr=0.01),
        SourceSettings("lr0.2", lr=0.2),
        SourceSettings("batch16", batch_size=16),
        SourceSettings("batch256", batch_size=256),
        SourceSettings("wd5e-3", weight_decay=5e-3),
        SourceSettings("wd0", weight_decay=0.0),
        SourceSettings("gc0.01", gc_penalty=0.01),
        SourceSettings("gc0.1", gc_penalty=0.1),
    ]


SOURCE_CLASSES = (0, 1, 2, 3, 4)
MODEL = {"name": "mlp", "kwargs": {"in_features": 64, "num_classes": 5, "widths": [128, 128]}}


def _classes(spec: str, keep: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    data = load_dataset(spec)
    labels = data.answers  # digits: class labels
    mask = torch.isin(labels, torch.tensor(keep))
    return data.inputs[mask], labels[mask]


def _gc_penalty(model: nn.Module, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A one-sample Hutchinson estimate of the batch's mean ‖∂e/∂x‖_F², differentiable."""
    x = x.clone().requires_grad_(True)
    embedding = _embedding_fn(model, "classifier" + INPUT_SUFFIX)(x)
    v = torch.randn(embedding.shape, generator=generator)
    (grad,) = torch.autograd.grad(embedding, x, v, create_graph=True)
    return (grad**2).sum(dim=1).mean()


def train_source(settings: SourceSettings, x: torch.Tensor, y: torch.Tensor) -> nn.Module:
    torch.manual_seed(settings.seed)
    model = build_model(MODEL).train()
    optimizer = torch.optim.SGD(
        model.parameters(), lr=settings.lr, momentum=0.9, weight_decay=settings.weight_decay
    )
    generator = torch.Generator().manual_seed(settings.seed)
    for _ in range(settings.epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), settings.batch_size):
            batch = order[start : start + settings.batch_size]
            loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
            if settings.gc_penalty > 0:
                loss = loss + settings.gc_penalty * _gc_penalty(model, x[batch], generator)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def train_transfer_sweep(
    out_dir: str | Path,
    settings: list[SourceSettings] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> Path:
    """Pre-train every setting on digits 0–4, transfer to 5–9, write one checkpoint per setting
    and ``transfer.csv`` (one row per setting) into ``out_dir/digits-transfer``."""
    settings = settings or default_sweep()
    folder = Path(out_dir) / TRANSFER_SWEEP
    folder.mkdir(parents=True, exist_ok=True)
    x, y = _classes("builtin:digits", SOURCE_CLASSES)
    target_x, target_y = _classes("builtin:digits", tuple(range(5, 10)))
    test_x, test_y = _classes("builtin:digits?split=test", SOURCE_CLASSES)
    rows = []
    for index, setting in enumerate(settings):
        model = train_source(setting, x, y)
        save_safetensors(model.state_dict(), folder / f"{setting.name}.safetensors")
        with torch.no_grad():
            accuracy = float((model(test_x).argmax(dim=1) == test_y).float().mean())
        row = {"model": setting.name, **asdict(setting), "source_test_acc": accuracy}
        row.pop("name")
        row.update(transfer_row(model, x, target_x, target_y.numpy()))
        rows.append(row)
        if progress is not None:
            progress(TRANSFER_SWEEP, index + 1, len(settings))
    table = pd.DataFrame(rows)
    table.to_csv(folder / SWEEP_FILE, index=False)
    (folder / "sweep.json").write_text(
        json.dumps(
            {
                "model": MODEL,
                "source_classes": list(SOURCE_CLASSES),
                "target_classes": [5, 6, 7, 8, 9],
                "notes": "MLPs pre-trained on digits 0–4 (training split) with the settings of "
                "each row, embeddings (classifier input) of digits 5–9 (training split) for the "
                "transfer.",
            },
            indent=2,
        )
        + "\n"
    )
    return folder


def bundled_sweep() -> Path:
    """The bundled transfer sweep's table (``checkpoints/digits-transfer/transfer.csv``)."""
    return bundled_runs_dir() / TRANSFER_SWEEP / SWEEP_FILE
