"""Checkpoints of a causal language model over a token corpus: next-token classes at each layer
(:mod:`ncviz.language`). Chosen by a run's task "language", ``language=True``, or a text/token
corpus as the data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from ncviz.analysis.options import AnalysisOptions
from ncviz.analysis.table import Measured, RowKey
from ncviz.language import (
    DEFAULT_MIN_COUNT,
    TokenCorpus,
    class_names,
    find_tokenizer,
    is_token_corpus,
    lm_head,
    read_corpus,
    token_features,
    token_layers,
    token_statistics,
    vocabulary_rows,
)
from ncviz.load import build_model, load_weights, read_checkpoint
from ncviz.sources.base import ProgressFn, checkpoint_progress
from ncviz.sources.checkpoints import CheckpointsSource, Measuring, checkpoint_fields


@dataclass(frozen=True)
class LanguageSource(CheckpointsSource):
    """An LM run (or checkpoint) and its corpus; ``min_count`` 2 unless given."""

    kind: ClassVar[str] = "language"

    @classmethod
    def detect(cls, path: Path, options: AnalysisOptions) -> LanguageSource | None:
        fields = checkpoint_fields(path, options)
        if fields is None:
            return None
        if not (
            options.language or fields["task"] == "language" or is_token_corpus(fields["data"])
        ):
            return None
        return cls(
            **{
                **fields,
                "task": "language",
                "metrics": {"min_count": DEFAULT_MIN_COUNT, **fields["metrics"]},
            }
        )

    def corpus(self, state: Measuring | None = None) -> TokenCorpus:
        """The token corpus, read once per analysis."""
        if state is not None and state.loaded is not None:
            return state.loaded
        corpus = read_corpus(self.data, find_tokenizer(Path(self.data.source), self.model.name))
        if state is not None:
            state.loaded = corpus
        return corpus

    def measure(self, path: Path, index: int, state: Measuring) -> Measured:
        """One checkpoint: next-token class statistics at each layer."""
        options = state.options
        corpus = self.corpus(state)
        checkpoint = read_checkpoint(path)
        net = build_model(self.model, trust_remote_code=options.trust_remote_code)
        load_weights(net, checkpoint.state_dict, source=path.name)
        head_name, head = lm_head(net, self.model.classifier)
        chosen = list(options.layers or token_layers(net, head_name))
        statistics = token_statistics(
            net,
            corpus,
            chosen,
            (head_name, head),
            device=options.device or "auto",
            batch_size=max(1, options.extract.batch_size // 8),
            min_count=options.extract.min_count,
            progress=checkpoint_progress(state.progress, index, state.count, path.name),
        )
        names = class_names(corpus, vocabulary_rows(head))
        # an LM is checkpointed by optimiser step: the step is its position on the training axis
        epoch = checkpoint.epoch if checkpoint.epoch is not None else checkpoint.step
        key = RowKey(self.run_name, path.name, epoch, checkpoint.step, self.data.split_label)
        measured = Measured()
        for layer in chosen:
            measured.add(key, layer, statistics[layer].compute(names, options.metrics))
        return measured

    def features(
        self,
        checkpoint: str,
        layer: str,
        *,
        split: str | None = None,
        target: int = 0,
        progress: ProgressFn | None = None,
        cache: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The layer's feature at every (non-padding) position and its next token's name."""
        corpus = self.corpus()
        net, _ = self.trained_model(checkpoint)
        _, head = lm_head(net, self.model.classifier)
        features, ids = token_features(net, corpus, layer, device="auto")
        return features, class_names(corpus, vocabulary_rows(head))[ids]
