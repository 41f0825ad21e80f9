"""What the dashboard asks of the engine, as plain picklable data with a stable job key, and
the module-level functions a budgeted worker process runs for it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ncviz.analysis import Analysis, analyze
from ncviz.analysis.options import ProgressFn
from ncviz.embedding import Embedding, embed
from ncviz.metrics import chance_baselines
from ncviz.sources.base import Source


@dataclass(frozen=True)
class AnalysisRequest:
    """Everything that determines an analysis (and so its job key)."""

    source: str
    label: str
    data: Any = None
    model: Any = None
    layers: tuple[str, ...] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    # the state of a run that is still growing (:func:`ncviz.load.runs.run_fingerprint`): part of
    # the key, so a new entry makes a new analysis; never passed to the analysis itself
    version: str = ""

    @property
    def key(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True, default=str)
        return "analysis-" + hashlib.sha256(text.encode()).hexdigest()[:24]


def run_request(request: AnalysisRequest, progress: ProgressFn | None = None) -> Analysis:
    """The analysis ``request`` asks for."""
    return analyze(
        request.source,
        request.data,
        model=request.model,
        layers=list(request.layers) if request.layers else None,
        progress=progress,
        **request.options,
    )


def embed_layer(
    source: Source,
    checkpoint: str,
    layer: str,
    *,
    split: str | None = None,
    method: str = "pca",
    max_points: int = 5000,
    target: int = 0,
    progress: ProgressFn | None = None,
) -> Embedding:
    """PCA/UMAP of one checkpoint and layer of ``source`` (its features read again)."""
    features, labels = source.features(
        checkpoint, layer, split=split, target=target, progress=progress
    )
    return embed(features, labels, method=method, max_points=max_points, progress=progress)


def training_counts_of(source: Source, progress: ProgressFn | None = None) -> dict | None:
    """:meth:`Source.training_counts` as a job (reading the training data is user input)."""
    return source.training_counts()


def chance_of(num_classes: int, dim: int, progress: ProgressFn | None = None) -> dict[str, float]:
    """:func:`~ncviz.metrics.chance_baselines` as a job: its cost grows as C²·d with the user's
    class count (32 s at C = 32k, d = 64), so it runs in a worker, not in the server."""
    return chance_baselines(num_classes, dim)
