"""Callbacks that record collapse from training frameworks, built on :class:`ncviz.Recorder`.

* :mod:`ncviz.integrations.lightning` — ``NcvizCallback`` for Lightning's ``Trainer``;
* :mod:`ncviz.integrations.hf` — ``NcvizTrainerCallback`` for Hugging Face's ``Trainer``.

Each imports its framework only when used; without it, creating the callback raises one
:class:`~ncviz.errors.OptionError` line saying what to install.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ncviz.errors import OptionError
from ncviz.record import Recorder


def numeric_values(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The scalar numbers of a framework's metrics dict (tensors of one element included)."""
    values = {}
    for key, value in metrics.items():
        if hasattr(value, "numel") and value.numel() == 1:
            value = value.item()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            values[str(key).replace("/", "_")] = float(value)
    return values


class EpochRecording:
    """What both callbacks share: a Recorder, the loaders to capture, and the epochs to record
    (0, n, 2n, … and the last)."""

    def __init__(
        self,
        path: str | Path,
        layers: Sequence[str] | str,
        classifier: str | None,
        loaders: Mapping[str, Iterable[Any]] | None,
        every_n_epochs: int,
        recorder_kwargs: Mapping[str, Any],
    ) -> None:
        if every_n_epochs < 1:
            raise OptionError(f"every_n_epochs must be ≥ 1, got {every_n_epochs}.")
        if loaders is not None and not isinstance(loaders, Mapping):
            raise OptionError('loaders must be a dict of split name to loader, e.g. {"train": dl}.')
        self.recorder = Recorder(path, layers, classifier, **recorder_kwargs)
        self.loaders = dict(loaders or {})
        self.every_n_epochs = every_n_epochs

    def epoch_end(
        self, model: Any, epoch: int, last: bool, train_loader: Iterable[Any] | None
    ) -> None:
        """Capture every loader at ``epoch`` if it is one to record (default: the train loader)."""
        if epoch % self.every_n_epochs and not last:
            return
        if self.loaders:
            loaders = dict(self.loaders)
        elif train_loader is not None:
            loaders = {"train": train_loader}
        else:
            raise OptionError("the trainer gave no train loader; pass loaders={...}.")
        for split, loader in loaders.items():
            self.recorder.capture(model, loader, step=epoch, split=split)
