"""Run × checkpoints × layers → a tidy metrics table, plus the per-class arrays for plots.

``analyze`` is the one call behind ``ncviz analyze`` and the dashboard: it finds the source a
path holds (:mod:`ncviz.sources`) and lets it read itself into an :class:`Analysis`, whose
``table`` has one row per (run, checkpoint, epoch, step, layer, split, metric) with ``value``.
"""

from ncviz.analysis.dispatch import analyze, analyze_with
from ncviz.analysis.followups import (
    agop_at,
    given_centres,
    groups_against_head,
    hookable_layers,
    layer_features,
    multicentre_at,
    ncmc_at,
    origin_of,
    ranks_at,
    source_agop,
    source_multicentre,
    source_ncmc,
    training_counts,
    with_multicentre,
)
from ncviz.analysis.options import AnalysisOptions, metric_options
from ncviz.analysis.table import (
    GROUP_COLUMNS,
    TABLE_COLUMNS,
    Analysis,
    Result,
    RowKey,
    group_summary_text,
    make_group_table,
    make_table,
    metric_rows,
    result_rows,
    terminal_phase_onset,
)

__all__ = [
    "GROUP_COLUMNS",
    "TABLE_COLUMNS",
    "Analysis",
    "AnalysisOptions",
    "Result",
    "RowKey",
    "agop_at",
    "analyze",
    "analyze_with",
    "given_centres",
    "group_summary_text",
    "groups_against_head",
    "hookable_layers",
    "layer_features",
    "make_group_table",
    "make_table",
    "metric_options",
    "metric_rows",
    "multicentre_at",
    "ncmc_at",
    "origin_of",
    "ranks_at",
    "result_rows",
    "source_agop",
    "source_multicentre",
    "source_ncmc",
    "terminal_phase_onset",
    "training_counts",
    "with_multicentre",
]
