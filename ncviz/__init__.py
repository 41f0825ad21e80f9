"""ncviz: measure and see neural collapse in trained networks.

The engine is importable without the dashboard::

    import ncviz
    metrics = ncviz.collapse_metrics(features, labels, weight=W, bias=b)
    metrics["nc1"], metrics["nc2_etf_distance"], metrics["nc4"]

The definitions of every key are in docs/metrics.md and in each function's docstring.
"""

from ncviz.errors import CheckpointError, DataError, InputError, NcvizError, OptionError
from ncviz.metrics import (
    CollapseResult,
    CollapseStatistics,
    RegressionResult,
    RegressionStatistics,
    chance_baselines,
    collapse_metrics,
    collapse_result,
    regression_metrics,
    regression_result,
)
from ncviz.record import Recorder

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "CollapseResult",
    "CollapseStatistics",
    "DataError",
    "InputError",
    "NcvizError",
    "OptionError",
    "Recorder",
    "RegressionResult",
    "RegressionStatistics",
    "__version__",
    "chance_baselines",
    "collapse_metrics",
    "collapse_result",
    "regression_metrics",
    "regression_result",
]
