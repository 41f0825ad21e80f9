"""``analyze``: find the source a path holds, then let it read itself."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ncviz import sources
from ncviz.analysis.options import AnalysisOptions, ProgressFn
from ncviz.analysis.table import Analysis
from ncviz.cache import ActivationCache
from ncviz.load import DataSpec, ModelSpec
from ncviz.metrics import RegressionResult
from ncviz.metrics.regression import nrc2024_distance


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
    ood: DataSpec | Mapping[str, Any] | str | None = None,
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
        ood: out-of-distribution data (a data spec) run through every checkpoint of a run:
            each classification layer gets ``nc5``, the mean |cos| of its class means to the
            OOD features' mean (:mod:`ncviz.metrics.ood`).
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
        ood=ood,
        **metric_options,
    )
    return analyze_with(source, options, progress)


def analyze_with(
    source: str | Path, options: AnalysisOptions, progress: ProgressFn | None = None
) -> Analysis:
    """:func:`analyze` with the options already built: detect the source, let it read itself
    (the rows in the convention of ``options.metrics``)."""
    analysis = sources.detect(source, options).analyze(options, progress)
    analysis = replace(analysis, convention=options.metrics.convention)
    if analysis.convention == "nrc2024":
        analysis = fix_run_gamma(analysis)
    if analysis.convention == "ncmc2024":
        from ncviz.analysis.followups import with_ncmc

        analysis = with_ncmc(analysis)
    return analysis


def fix_run_gamma(analysis: Analysis) -> Analysis:
    """nrc2024 over a run: every checkpoint's ``nrc3`` at the γ of the run's final checkpoint
    (per layer), as the NRC authors' script does (their ``best_c``, chosen once at the end of
    training); ``nrc3_gamma`` then holds that γ on every row."""
    if analysis.task != "regression" or not analysis.checkpoints:
        return analysis
    final = analysis.checkpoints[-1]
    table, results = analysis.table.copy(), dict(analysis.results)
    for layer in analysis.layers:
        last = analysis.results.get((final, layer))
        if not isinstance(last, RegressionResult) or "nrc3_gamma" not in last.metrics:
            continue
        gamma = last.metrics["nrc3_gamma"]
        for checkpoint in analysis.checkpoints:
            result = analysis.results.get((checkpoint, layer))
            if not isinstance(result, RegressionResult) or "ww" not in result.arrays:
                continue
            value = nrc2024_distance(
                torch.as_tensor(result.arrays["ww"]),
                torch.as_tensor(result.arrays["target_cov"]),
                gamma,
            )
            metrics = {**result.metrics, "nrc3": value, "nrc3_gamma": gamma}
            results[(checkpoint, layer)] = replace(result, metrics=metrics)
            rows = (table["checkpoint"] == checkpoint) & (table["layer"] == layer)
            table.loc[rows & (table["metric"] == "nrc3"), "value"] = value
            table.loc[rows & (table["metric"] == "nrc3_gamma"), "value"] = gamma
    return replace(analysis, table=table, results=results)
