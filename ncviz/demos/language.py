"""The bundled language-model run: a tiny causal transformer trained on a synthetic Zipfian
language (:func:`ncviz.synthetic.markov_language`), checkpointed at log-spaced steps, so that the
Language page shows next-token collapse (Wu & Papyan 2024) out of the box.

The run folder holds ``run.json`` (task "language"), ``vocab.txt`` (the words), the analysed corpus
``corpus.npy`` (a sample of the training language, uint16 ids), and ``step_XXXX.safetensors``.
About 40 s on two CPU cores; a few MB on disk.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ncviz.demos.common import ProgressFn
from ncviz.language import Vocabulary
from ncviz.load import build_model, save_safetensors
from ncviz.load.runs import write_run_json
from ncviz.synthetic import markov_language

LANGUAGE_RUN = "markov-lm"


@dataclass(frozen=True)
class LanguageDemoSettings:
    """Language, model and optimiser (AdamW, constant learning rate) of the bundled LM run."""

    name: str = LANGUAGE_RUN
    vocab: int = 256
    context: int = 32
    d_model: int = 64
    layers: int = 2
    heads: int = 4
    train_tokens: int = 400_000
    analysed_tokens: int = 32_768
    steps: int = 2_400
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.01
    checkpoints: tuple[int, ...] = (0, 10, 30, 100, 300, 1000, 2400)
    seed: int = 0

    @property
    def model(self) -> dict:
        kwargs = {
            "vocab_size": self.vocab,
            "d_model": self.d_model,
            "layers": self.layers,
            "heads": self.heads,
            "context": self.context,
        }
        return {"name": "tiny_lm", "kwargs": kwargs}


def _loss(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    logits = model(ids)
    return nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1)
    )


def train_language_run(
    out_dir: str | Path,
    settings: LanguageDemoSettings = LanguageDemoSettings(),
    progress: ProgressFn | None = None,
) -> Path:
    """Train the tiny LM and write its run folder (see the module docstring)."""
    folder = Path(out_dir) / settings.name
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.safetensors"):
        old.unlink()
    language = markov_language(vocab=settings.vocab, seed=settings.seed)
    Vocabulary(language.words).write(folder / "vocab.txt")
    stream = language.sample(settings.train_tokens, seed=settings.seed + 1)
    held_out = language.sample(settings.analysed_tokens, seed=settings.seed + 2)
    np.save(folder / "corpus.npy", stream[: settings.analysed_tokens].astype(np.uint16))
    usable = len(stream) // settings.context * settings.context
    sequences = torch.from_numpy(stream[:usable].reshape(-1, settings.context))
    usable = len(held_out) // settings.context * settings.context
    validation = torch.from_numpy(held_out[:usable].reshape(-1, settings.context))

    torch.manual_seed(settings.seed)
    model = build_model(settings.model).train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    generator = torch.Generator().manual_seed(settings.seed)
    log: dict[str, list[float]] = {"step": [], "train_loss": [], "val_loss": []}
    order = torch.randperm(len(sequences), generator=generator)
    cursor = 0
    for step in range(settings.steps + 1):
        if step > 0:
            if cursor + settings.batch_size > len(order):
                order, cursor = torch.randperm(len(sequences), generator=generator), 0
            batch = sequences[order[cursor : cursor + settings.batch_size]]
            cursor += settings.batch_size
            loss = _loss(model, batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if step in settings.checkpoints:
            model.eval()
            with torch.no_grad():
                train_loss = float(_loss(model, sequences[:512]))
                val_loss = float(_loss(model, validation))
            for key, value in zip(log, (step, train_loss, val_loss)):
                log[key].append(value)
            save_safetensors(model.state_dict(), folder / f"step_{step:04d}.safetensors", step=step)
            model.train()
        if progress is not None and step % 100 == 0:
            progress(settings.name, step, settings.steps)
    write_run_json(
        folder,
        name=settings.name,
        model=settings.model,
        data={"source": "corpus.npy", "params": {"context": settings.context}},
        task="language",
        optimizer={
            "name": "AdamW",
            **{
                k: v
                for k, v in asdict(settings).items()
                if k in ("steps", "batch_size", "lr", "weight_decay")
            },
        },
        notes=(
            "A 2-block causal transformer (d = 64, tied embeddings) trained on a synthetic "
            f"Markov language of {settings.vocab} words with Zipfian frequencies; next tokens "
            "are the classes (Wu & Papyan 2024, Linguistic Collapse). Metrics are measured on "
            f"{settings.analysed_tokens:,} tokens of the training language."
        ),
        log=log,
    )
    return folder
