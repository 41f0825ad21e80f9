"""``analyze``: find the source a path holds, then let it read itself."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ncviz import sources
from ncviz.analysis.options import AnalysisOptions, ProgressFn
from ncviz.analysis.table import Analysis
from ncviz.cache import ActivationCache
from ncviz.load import DataSpec, ModelSpec


def analyze(
    source: str | Path,
    data: DataSpec | Mapping[str, Any] | str | None = None,
    *,
    model: ModelSpec | Mapping[str, Any] | str | None = None,
    layers: list[str] | None = None,
    device: str | None = None,
    batch_size: int = 256,
    pool: str = "auto",
    autocast: bool = False,
    cache: ActivationCache | bool | None = True,
    progress: ProgressFn | None = None,
    checkpoint_filter: Callable[[Path], bool] | None = None,
    trust_remote_code: bool = False,
    confine_to: str | Path | None = None,
    language: bool = False,
    feature_learning: tuple[str, ...] | list[str] = (),
    **metric_options: Any,
) -> Analysis:
    """Metrics of every checkpoint of a run (or one checkpoint, or a features file).

    Args:
        source: a run folder (``run.json`` supplies model and data unless given here), a
            checkpoint file, a recorded run, a features file or folder, or an ONNX model
            (every kind in :data:`ncviz.sources.SOURCES`).
        data: data spec (see :mod:`ncviz.load.datasets`), e.g. ``"builtin:digits?split=test"``.
        model: model spec (see :mod:`ncviz.load.architectures`).
        layers: layer names (see ``ncviz layers``); default: every top-level block output and
            the classifier input.
        device: "cuda", "cpu" or None (CUDA when available).
        cache: True = the default activation cache, an :class:`ActivationCache`, or False.
        progress: ``progress(done, total, message)`` after every batch; raise to cancel.
        trust_remote_code: let a model spec's ``trust_remote_code`` run code from its files
            (your own machine only; the dashboard never sets it).
        confine_to: a folder that every file read must resolve inside (the shared server's data
            folder): the source, each file of a run folder, and a data file.
        language: next-token classes of a causal LM over a token corpus (:mod:`ncviz.language`;
            also chosen by a run's task "language" or a .txt/.jsonl corpus); ``batch_size``/8
            sequences per batch, ``min_count`` 2 unless given.
        feature_learning: ``"agop"`` and/or ``"gc"``: add the rows of
            :func:`ncviz.feature_learning.feature_learning_rows` (NFA correlation and stage NC1
            per linear layer; geometric complexity and collapse at the classifier input) — for
            checkpoints with a model and labelled data.
        metric_options: options of the collapse metrics (``global_mean``, ``tau``, …; see
            :class:`~ncviz.metrics.CollapseOptions`), validated here once.
    """
    options = AnalysisOptions.parse(
        data,
        model=model,
        layers=layers,
        device=device,
        batch_size=batch_size,
        pool=pool,
        autocast=autocast,
        cache=cache,
        checkpoint_filter=checkpoint_filter,
        trust_remote_code=trust_remote_code,
        confine_to=confine_to,
        language=language,
        feature_learning=feature_learning,
        **metric_options,
    )
    return analyze_with(source, options, progress)


def analyze_with(
    source: str | Path, options: AnalysisOptions, progress: ProgressFn | None = None
) -> Analysis:
    """:func:`analyze` with the options already built: detect the source, let it read itself."""
    return sources.detect(source, options).analyze(options, progress)
