"""What the views compute after an analysis: a layer's features, the training counts, the
multi-centre and AGOP measures, ranks at another τ, group geometry against the head.

Each computation that reads user files takes the analysis's *source* (a small picklable object,
:mod:`ncviz.sources`) so that a server can run it in a budgeted worker process; the functions
that take an :class:`Analysis` are the library's convenience over them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ncviz import sources
from ncviz.analysis.options import AnalysisOptions, ProgressFn
from ncviz.analysis.table import Analysis, RowKey, make_table, metric_rows
from ncviz.errors import OptionError
from ncviz.extract import INPUT_SUFFIX, LayerInfo
from ncviz.load import DataSpec, ModelSpec
from ncviz.metrics import CollapseResult
from ncviz.metrics.groups import GroupResult, assemble_groups
from ncviz.sources.base import Source


def origin_of(analysis: Analysis) -> Source:
    """The source an analysis was read from (found again from its path when it was built
    without one)."""
    if analysis.origin is not None:
        return analysis.origin
    options = AnalysisOptions(
        data=None if analysis.data is None else DataSpec.parse(analysis.data),
        model=None if analysis.model is None else ModelSpec.parse(analysis.model),
        language=analysis.task == "language",
    )
    return sources.detect(Path(analysis.source), options)


def layer_features(
    analysis: Analysis,
    checkpoint: str,
    layer: str,
    *,
    cache: bool = True,
    progress: ProgressFn | None = None,
    target: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The features (N×d) and labels (or regression target number ``target``) of one analysed
    checkpoint and layer (a recorded run: its sample), from the activation cache when present."""
    return origin_of(analysis).features(
        checkpoint, layer, split=analysis.split, target=target, progress=progress, cache=cache
    )


def training_counts(analysis: Analysis) -> dict[str, int] | None:
    """Samples per class of the data the run was trained on (run.json ``train_data``), by class
    name — beside the counts of the analysed split, which may be balanced; None if unknown."""
    return origin_of(analysis).training_counts()


def given_centres(analysis: Analysis) -> np.ndarray | None:
    """The fixed multi-centre targets (C×f×d) a run was trained with — run.json ``centres``
    names a ``.npy`` in the run folder (the NCMC demo) — or None."""
    return origin_of(analysis).given_centres()


def source_multicentre(
    source: Source,
    checkpoint: str,
    layer: str,
    *,
    split: str | None = None,
    max_centres: int = 5,
    use_given: bool = False,
    progress: ProgressFn | None = None,
) -> Any:
    """Multi-centre collapse (:func:`ncviz.metrics.multicentre.multicentre_result`) of one
    checkpoint and layer of ``source``: centres by k-means with k ≤ ``max_centres`` chosen by
    silhouette, or the run's own fixed targets (``use_given``, for the classifier input)."""
    from ncviz.metrics.multicentre import multicentre_result

    features, labels = source.features(checkpoint, layer, split=split, progress=progress)
    centres = source.given_centres() if use_given else None
    if use_given and centres is None:
        raise OptionError("this run has no fixed centres (run.json 'centres'); use k-means.")
    return multicentre_result(features, labels, centres=centres, max_centres=max_centres)


def source_ncmc(
    source: Source,
    checkpoint: str,
    layer: str,
    *,
    split: str | None = None,
    progress: ProgressFn | None = None,
) -> Any:
    """NCMC's collapse to each class's centre-mean (:func:`ncviz.metrics.multicentre.ncmc_result`)
    at one checkpoint and layer of a run trained to fixed centres (run.json ``centres``)."""
    from ncviz.metrics.multicentre import ncmc_result

    centres = source.given_centres()
    if centres is None:
        raise OptionError(
            "this run has no fixed centres (run.json 'centres'): NCMC needs the centres it was "
            "trained towards; the sub-cluster view (k-means) works on any run."
        )
    features, labels = source.features(checkpoint, layer, split=split, progress=progress)
    return ncmc_result(features, labels, centres)


def ncmc_at(analysis: Analysis, checkpoint: str, layer: str) -> Any:
    """:func:`source_ncmc` of one analysed checkpoint and layer."""
    return source_ncmc(origin_of(analysis), checkpoint, layer, split=analysis.split)


def multicentre_at(
    analysis: Analysis,
    checkpoint: str,
    layer: str,
    *,
    max_centres: int = 5,
    use_given: bool = False,
    progress: ProgressFn | None = None,
) -> Any:
    """:func:`source_multicentre` of one analysed checkpoint and layer."""
    return source_multicentre(
        origin_of(analysis),
        checkpoint,
        layer,
        split=analysis.split,
        max_centres=max_centres,
        use_given=use_given,
        progress=progress,
    )


def checkpoint_keys(analysis: Analysis) -> dict[str, RowKey]:
    """The row key of every checkpoint of ``analysis`` (its epoch, step and split), for rows a
    follow-up adds to the table."""
    epochs = dict(zip(analysis.checkpoints, analysis.epochs()))
    steps = analysis.table.drop_duplicates("checkpoint").set_index("checkpoint")["step"]
    split = analysis.split or analysis.table["split"].iloc[0]
    keys = {}
    for checkpoint in analysis.checkpoints:
        step = steps.get(checkpoint)
        keys[checkpoint] = RowKey(
            analysis.run,
            checkpoint,
            epochs.get(checkpoint),
            None if pd.isna(step) else int(step),
            split,
        )
    return keys


def with_checkpoint_rows(
    analysis: Analysis,
    layer: str,
    measure: Callable[[str], Mapping[str, float]],
    what: str,
    progress: ProgressFn | None = None,
) -> Analysis:
    """The analysis with ``measure(checkpoint)``'s rows at ``layer`` added for every checkpoint
    (a follow-up's rows: sub-clusters, NCMC), ``progress`` after each."""
    rows = []
    for index, (checkpoint, key) in enumerate(checkpoint_keys(analysis).items()):
        rows += metric_rows(key, layer, measure(checkpoint))
        if progress is not None:
            progress(index + 1, len(analysis.checkpoints), f"{checkpoint}: {what}")
    table = pd.concat([analysis.table, make_table(rows)], ignore_index=True)
    return replace(analysis, table=table)


def with_multicentre(
    analysis: Analysis,
    max_centres: int = 5,
    layer: str | None = None,
    progress: ProgressFn | None = None,
) -> Analysis:
    """The analysis with, for every checkpoint at ``layer`` (default: the last, the classifier
    input), the sub-cluster rows (``subcluster_nc_ave``, ``subcluster_nc_std``,
    ``subcluster_alignment``, ``subcluster_count``: per-class k-means with k ≤ ``max_centres``)
    and — for a run trained to fixed centres — NCMC's rows (``ncmc_nc_ave``, ``ncmc_nc_std``,
    ``ncmc_alignment``, ``ncmc_centres``) added to its table (``ncviz analyze --multicentre K``)."""
    layer = layer or analysis.layers[-1]
    source = origin_of(analysis)
    with_ncmc = source.has_given_centres() and layer.endswith(INPUT_SUFFIX)

    def measure(checkpoint: str) -> dict[str, float]:
        found = source_multicentre(
            source, checkpoint, layer, split=analysis.split, max_centres=max_centres
        ).metrics
        if with_ncmc:
            found = {
                **found,
                **source_ncmc(source, checkpoint, layer, split=analysis.split).metrics,
            }
        return found

    return with_checkpoint_rows(analysis, layer, measure, "multi-centre", progress)


def with_ncmc(analysis: Analysis, progress: ProgressFn | None = None) -> Analysis:
    """The ``ncmc2024`` convention over a run: NCMC's rows (``ncmc_nc_ave``, ``ncmc_nc_std``,
    ``ncmc_alignment``, ``ncmc_centres``) of every checkpoint added at the classifier input, for
    a run trained to fixed centres. Without centres (or without a classifier-input layer) they
    are left out and every result there says why — never estimated."""
    source = origin_of(analysis) if analysis.origin is not None else None
    layers = [layer for layer in analysis.layers if layer.endswith(INPUT_SUFFIX)]
    if source is None or not source.has_given_centres() or not layers:
        reason = (
            "ncmc2024: ncmc_* are left out — they need the fixed centres the run was trained "
            "towards (run.json 'centres') at the classifier input."
        )
        for result in analysis.results.values():
            if isinstance(result, CollapseResult) and reason not in result.warnings:
                result.warnings.append(reason)
        return analysis
    layer = layers[-1]

    def measure(checkpoint: str) -> dict[str, float]:
        return source_ncmc(source, checkpoint, layer, split=analysis.split).metrics

    return with_checkpoint_rows(analysis, layer, measure, "NCMC", progress)


def source_agop(
    source: Source,
    checkpoint: str,
    layer: str,
    max_samples: int = 1000,
    progress: ProgressFn | None = None,
) -> np.ndarray:
    """The AGOP (d_in × d_in) at the input of linear ``layer`` (``"<name>:input"``) of one
    checkpoint of ``source``, on its data (a seeded subset of ``max_samples``)."""
    from ncviz.feature_learning import agop

    net, _ = source.trained_model(checkpoint)
    inputs = source.inputs()
    if len(inputs) > max_samples:
        inputs = inputs[np.sort(np.random.default_rng(0).choice(len(inputs), max_samples, False))]
    return agop(net, inputs, layer.removesuffix(INPUT_SUFFIX)).numpy()


def agop_at(analysis: Analysis, checkpoint: str, layer: str, max_samples: int = 1000) -> np.ndarray:
    """:func:`source_agop` of one analysed checkpoint."""
    return source_agop(origin_of(analysis), checkpoint, layer, max_samples)


def ranks_at(analysis: Analysis, tau: float, centring: str = "centred") -> pd.DataFrame:
    """The numerical rank of the class means (s_k > τ·s_1) of every analysed checkpoint and
    layer, as tidy rows — for a τ other than the analysis's own, and either convention
    (:data:`~ncviz.metrics.spectra.MEANS_CENTRING`): metric ``rank_means`` of the centred means
    M, or ``rank_means_uncentred`` of the class means themselves."""
    from ncviz.metrics.spectra import means_spectrum, numerical_rank, rank_metric

    metric = rank_metric(centring)
    needed = "sv_means" if centring == "centred" else "class_means"
    epochs = dict(zip(analysis.checkpoints, analysis.epochs()))
    rows = []
    for (checkpoint, layer), result in analysis.results.items():
        if isinstance(result, CollapseResult) and needed in result.arrays:
            values = torch.as_tensor(means_spectrum(result.arrays, centring))
            key = RowKey(analysis.run, checkpoint, epochs.get(checkpoint), None, analysis.split)
            rows += metric_rows(key, layer, {metric: float(numerical_rank(values, tau))})
    return make_table(rows)


def groups_against_head(analysis: Analysis, checkpoint: str, layer: str) -> GroupResult | None:
    """The groups of one checkpoint and layer with ``etf_alignment`` measured against the
    classifier's rows W (a fixed ETF head's own simplex) instead of the best-fit ETF; None when
    the layer has no groups or no classifier."""
    grouped = analysis.group_results.get((checkpoint, layer))
    pooled = analysis.results.get((checkpoint, layer))
    if grouped is None or not isinstance(pooled, CollapseResult):
        return None
    if "class_weight" not in pooled.arrays:
        return None
    return assemble_groups(
        grouped.results,
        grouped.groups,
        np.asarray(pooled.classes),
        etf=pooled.arrays["class_weight"],
    )


def hookable_layers(
    model: ModelSpec | Mapping[str, Any] | str | None,
    data: DataSpec | Mapping[str, Any] | str,
    source: str | Path | None = None,
    progress: ProgressFn | None = None,
) -> tuple[list[LayerInfo], list[str]]:
    """Every hookable layer of an (untrained) model with its output shape on this data, and the
    layers analysed by default — for choosing layers before any checkpoint is loaded. An ONNX
    ``source`` lists its graph's layers instead (the model spec is then not needed)."""
    from ncviz.sources.checkpoints import hookable_layers as model_layers
    from ncviz.sources.onnx import OnnxSource

    spec = DataSpec.parse(data)
    if source is not None:
        found = OnnxSource.detect(Path(source), AnalysisOptions(data=spec))
        if found is not None:
            return found.hookable_layers(spec)
    if model is None:
        raise OptionError("listing layers needs a model spec (or an ONNX source).")
    return model_layers(ModelSpec.parse(model), spec)
