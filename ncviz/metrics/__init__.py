"""Pure metric math: streaming sufficient statistics and every metric of docs/metrics.md."""

from ncviz.metrics.baselines import chance_baselines
from ncviz.metrics.classification import CollapseResult, CollapseStatistics
from ncviz.metrics.functional import collapse_metrics, collapse_result
from ncviz.metrics.info import METRICS, MetricInfo
from ncviz.metrics.options import CollapseOptions
from ncviz.metrics.regression import (
    RegressionResult,
    RegressionStatistics,
    regression_metrics,
    regression_result,
    ufm_regression_optimum,
)

__all__ = [
    "METRICS",
    "CollapseOptions",
    "CollapseResult",
    "CollapseStatistics",
    "MetricInfo",
    "RegressionResult",
    "RegressionStatistics",
    "chance_baselines",
    "collapse_metrics",
    "collapse_result",
    "regression_metrics",
    "regression_result",
    "ufm_regression_optimum",
]
