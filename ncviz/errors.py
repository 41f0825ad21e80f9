"""The small exception hierarchy whose messages are shown to users as they are.

Every error a user can cause (bad input, a bad file, a wrong option) is an ``NcvizError``: a
``ValueError`` whose message is one line saying what is wrong and how to fix it. The CLI and the
dashboard catch these and print the message, never a traceback.
"""

from __future__ import annotations


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
