"""Plotly figure builders shared by the dashboard and the HTML report, one module per view family
(geometry, heatmaps, spectra, training, groups, studies) and the tables beside them.

Each function takes finished results (tables, :class:`~ncviz.metrics.CollapseResult` arrays) and
returns a ``plotly.graph_objects.Figure`` or a frame; none of them computes metrics (the small
computations behind the views live in :mod:`ncviz.metrics.summaries`). Axes use log scale for
metrics flagged ``log_scale`` in :mod:`ncviz.metrics.info`.
"""

from ncviz.plots.geometry import (
    DENSITY_THRESHOLD,
    centred_means,
    embedding_figure,
    geometry_animation,
    geometry_figure,
    norms_figure,
)
from ncviz.plots.groups import (
    GROUP_SYMBOLS,
    distance_matrix_figure,
    group_bars,
    group_curves,
    multicentre_figure,
    prototype_figure,
)
from ncviz.plots.heatmaps import (
    HEATMAP_IMAGE_THRESHOLD,
    agop_figure,
    class_order,
    cosine_heatmap,
    cosine_histogram,
    etf_colorscale,
    image_heatmap,
)
from ncviz.plots.spectra import (
    SPECTRA,
    SPECTRUM_FLOOR,
    layer_spectra_figure,
    layers_spectrum_figure,
    ranks_figure,
    spectrum_figure,
)
from ncviz.plots.studies import buckets_figure, correlation_figure, shots_figure, study_scatter
from ncviz.plots.style import (
    PALETTE,
    TEMPLATE,
    bars,
    curve,
    heatmap,
    layout,
    log_axis,
    metric_label,
)
from ncviz.plots.tables import (
    TRAINED_ON,
    decay_table,
    group_metrics_table,
    multicentre_table,
    per_class_table,
    side_by_side,
)
from ncviz.plots.training import (
    EPOCH_SCALES,
    accuracy_figure,
    add_references,
    compare_figure,
    depth_figure,
    epoch_axis,
    epoch_curves,
    epoch_scale,
    history_figure,
    log_columns,
    mark_epoch,
    mark_events,
    stages_figure,
    sweep_figure,
    training_figure,
)

__all__ = [
    "DENSITY_THRESHOLD",
    "EPOCH_SCALES",
    "GROUP_SYMBOLS",
    "HEATMAP_IMAGE_THRESHOLD",
    "PALETTE",
    "SPECTRA",
    "SPECTRUM_FLOOR",
    "TEMPLATE",
    "TRAINED_ON",
    "accuracy_figure",
    "add_references",
    "agop_figure",
    "bars",
    "buckets_figure",
    "centred_means",
    "class_order",
    "compare_figure",
    "correlation_figure",
    "cosine_heatmap",
    "cosine_histogram",
    "curve",
    "decay_table",
    "depth_figure",
    "distance_matrix_figure",
    "embedding_figure",
    "epoch_axis",
    "epoch_curves",
    "epoch_scale",
    "etf_colorscale",
    "geometry_animation",
    "geometry_figure",
    "group_bars",
    "group_curves",
    "group_metrics_table",
    "heatmap",
    "history_figure",
    "image_heatmap",
    "layer_spectra_figure",
    "layers_spectrum_figure",
    "layout",
    "log_axis",
    "log_columns",
    "mark_epoch",
    "mark_events",
    "metric_label",
    "multicentre_figure",
    "multicentre_table",
    "norms_figure",
    "per_class_table",
    "prototype_figure",
    "ranks_figure",
    "shots_figure",
    "side_by_side",
    "spectrum_figure",
    "stages_figure",
    "study_scatter",
    "sweep_figure",
    "training_figure",
]
