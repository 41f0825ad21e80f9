"""Callbacks that record collapse from training frameworks, built on :class:`ncviz.Recorder`.

* :mod:`ncviz.integrations.lightning` — ``NcvizCallback`` for Lightning's ``Trainer``;
* :mod:`ncviz.integrations.hf` — ``NcvizTrainerCallback`` for Hugging Face's ``Trainer``.

Each imports its framework only when used; without it, creating the callback raises one
:class:`~ncviz.errors.OptionError` line saying what to install.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ncviz.errors import OptionError


def numeric_values(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The scalar numbers of a framework's metrics dict (tensors of one element included)."""
    values = {}
    for key, value in metrics.items():
        if hasattr(value, "numel") and value.numel() == 1:
            value = value.item()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            values[str(key).replace("/", "_")] = float(value)
    return values


def check_loaders(loaders: Mapping[str, Iterable[Any]] | None) -> dict[str, Iterable[Any]]:
    """``{split: loader}`` as given (validated), or empty: the framework's own train loader."""
    if loaders is None:
        return {}
    if not isinstance(loaders, Mapping):
        raise OptionError('loaders must be a dict of split name to loader, e.g. {"train": dl}.')
    return dict(loaders)
