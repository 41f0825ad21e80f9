"""What ncviz can analyse, one module per kind behind one protocol (:class:`Source`).

:func:`detect` asks each kind in :data:`SOURCES` in turn whether it reads a path; the first that
does is the source. A new kind is one module with a :class:`Source` subclass and one line here.
"""

from __future__ import annotations

from pathlib import Path

from ncviz.analysis.options import AnalysisOptions
from ncviz.errors import DataError
from ncviz.load.server_folder import check_inside
from ncviz.sources.base import Source
from ncviz.sources.checkpoints import CheckpointsSource
from ncviz.sources.exported import ExportedSource
from ncviz.sources.features_files import FeaturesFilesSource
from ncviz.sources.language import LanguageSource
from ncviz.sources.onnx import OnnxSource
from ncviz.sources.recorded import RecordedSource

# tried in this order: the first kind whose detect() recognises the path reads it
SOURCES: tuple[type[Source], ...] = (
    RecordedSource,
    FeaturesFilesSource,
    ExportedSource,
    OnnxSource,
    LanguageSource,
    CheckpointsSource,
)


def detect(path: str | Path, options: AnalysisOptions | None = None) -> Source:
    """The source at ``path``: its kind found once, with what it needs to be read.

    Raises :class:`~ncviz.errors.DataError` when the path is missing, outside
    ``options.confine_to``, or of no known kind."""
    path = Path(path)
    options = options or AnalysisOptions()
    if not path.exists():
        raise DataError(f"{path.name} does not exist.")
    if options.confine_to is not None:
        check_inside(options.confine_to, path)
    for kind in SOURCES:
        found = kind.detect(path, options)
        if found is not None:
            return found
    raise DataError(
        f"{path.name} is neither a run folder, a checkpoint (.safetensors/.pt/.pth) nor a "
        "features file."
    )


__all__ = [
    "SOURCES",
    "CheckpointsSource",
    "ExportedSource",
    "FeaturesFilesSource",
    "LanguageSource",
    "OnnxSource",
    "RecordedSource",
    "Source",
    "detect",
]
