"""ncviz: measure and see neural collapse in trained networks.

The engine is importable without the dashboard::

    import ncviz
    metrics = ncviz.collapse_metrics(features, labels, weight=W, bias=b)
    metrics["nc1"], metrics["nc2_etf_distance"], metrics["nc4"]

The definitions of every key are in METRICS.md and in each function's docstring.
"""

from ncviz.errors import CheckpointError, DataError, InputError, NcvizError, OptionError
from ncviz.metrics import (
    CollapseResult,
    CollapseStatistics,
    RegressionResult,
    chance_baselines,
    collapse_metrics,
    collapse_result,
    regression_metrics,
    regression_result,
)

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "CollapseResult",
    "CollapseStatistics",
    "DataError",
    "InputError",
    "NcvizError",
    "OptionError",
    "RegressionResult",
    "__version__",
    "chance_baselines",
    "collapse_metrics",
    "collapse_result",
    "regression_metrics",
    "regression_result",
]
