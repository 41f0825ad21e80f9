"""The small exception hierarchy whose messages are shown to users as they are.

Every error a user can cause (bad input, a bad file, a wrong option) is an ``NcvizError``: a
``ValueError`` whose message is one line saying what is wrong and how to fix it. The CLI and the
dashboard catch these and print the message, never a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class NcvizError(ValueError):
    """Base class: a user-facing problem with a one-line, actionable message."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class InputError(NcvizError):
    """Features, labels, targets or classifier weights that metrics cannot use."""


class OptionError(NcvizError):
    """An option value outside what the metric definitions allow."""


class DataError(NcvizError):
    """A dataset that cannot be read or does not have the expected columns/shapes."""


class CheckpointError(NcvizError):
    """A checkpoint that is unsafe, corrupt, or does not match the chosen architecture."""


def did_you_mean(name: str, known: Iterable[str], shown: int = 12) -> str:
    """The end of an "unknown name" message: the closest known names first (a typo's fix), then
    the others up to ``shown``.

    >>> did_you_mean("fc1:inptu", ["conv1", "fc1", "fc1:input", "fc2"])
    "did you mean 'fc1:input'? (known: 'fc1:input', 'conv1', 'fc1', 'fc2')"
    >>> did_you_mean("zzz", ["a", "b"])
    "known: 'a', 'b'"
    """
    names = list(dict.fromkeys(known))
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    ordered = close + [n for n in names if n not in close]
    listed = ", ".join(repr(n) for n in ordered[:shown])
    more = f" and {len(ordered) - shown} more" if len(ordered) > shown else ""
    if close:
        return f"did you mean {close[0]!r}? (known: {listed}{more})"
    return f"known: {listed}{more}"
