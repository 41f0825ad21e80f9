"""The protocol every source kind follows: how ncviz finds out what a path holds, analyses it, and
reads more of it later (a layer's features, the training counts, the model) for the views.

A source is a small picklable object (paths and specs, nothing loaded), so a follow-up job on
user input can be sent whole to a budgeted worker process (:mod:`ncviz.server.workers`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ncviz.errors import OptionError

if TYPE_CHECKING:
    from torch import nn

    from ncviz.analysis.options import AnalysisOptions
    from ncviz.analysis.table import Analysis

ProgressFn = Callable[[int, int, str], None]


class Source(ABC):
    """One kind of input (checkpoints, a recorded run, features files, an ONNX graph, …).

    Subclasses are dataclasses; :meth:`detect` is tried in the order of
    :data:`ncviz.sources.SOURCES` and the first source that recognises the path reads it.
    """

    kind: ClassVar[str]
    path: Path

    @classmethod
    @abstractmethod
    def detect(cls, path: Path, options: AnalysisOptions) -> Source | None:
        """This kind's source for ``path``, or None when the path is not of this kind.
        Raises an :class:`~ncviz.errors.NcvizError` when it is, but cannot be read as asked."""

    @abstractmethod
    def analyze(self, options: AnalysisOptions, progress: ProgressFn | None = None) -> Analysis:
        """Every checkpoint × layer (× split, × group) into the tidy table and results."""

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
        """The features (N×d) of one checkpoint and layer with their labels (class names) or
        regression target number ``target`` — what the embedding and multi-centre views use;
        ``cache``: read and write the activation cache where the source extracts features."""
        raise OptionError(f"a {self.kind} source keeps no features of its layers.")

    def training_counts(self) -> dict[str, int] | None:
        """Samples per class of the data the run was trained on, when the source knows them."""
        return None

    def has_given_centres(self) -> bool:
        """Whether the run names fixed multi-centre targets (without reading them)."""
        return False

    def given_centres(self) -> np.ndarray | None:
        """The fixed multi-centre targets (C×f×d) the run was trained with, if any."""
        return None

    def trained_model(self, checkpoint: str) -> tuple[nn.Module, Any]:
        """The model with one checkpoint's weights, and that checkpoint (AGOP needs it)."""
        raise OptionError("this needs checkpoints with a model spec and data.")

    def inputs(self) -> Any:
        """The model inputs of the analysed data (AGOP needs them)."""
        raise OptionError("this needs checkpoints with a model spec and data.")


def checkpoint_progress(
    progress: ProgressFn | None, index: int, count: int, name: str
) -> ProgressFn | None:
    """Progress of checkpoint ``index`` of ``count`` as a share of the whole analysis."""
    if progress is None:
        return None

    def report(done: int, total: int, message: str) -> None:
        progress(index * total + done, count * total, f"{name} ({index + 1}/{count}): {message}")

    return report
