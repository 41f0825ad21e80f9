"""Shared look of every figure: palette, template, axis labels from the metrics registry, and the
generic bar/curve/heatmap builders."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

from ncviz.metrics import METRICS

PALETTE = qualitative.D3 + qualitative.Plotly


TEMPLATE = "plotly_white"


def metric_label(key: str) -> str:
    info = METRICS.get(key)
    return f"{info.label} ({key})" if info else key


def log_axis(key: str, values: Sequence[float]) -> bool:
    info = METRICS.get(key)
    finite = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    return bool(info and info.log_scale and finite.size and (finite > 0).all())


def layout(fig: go.Figure, title: str, **kwargs) -> go.Figure:
    fig.update_xaxes(exponentformat="power")
    fig.update_yaxes(exponentformat="power")
    fig.update_layout(template=TEMPLATE, title=title, margin=dict(l=60, r=20, t=60, b=50), **kwargs)
    return fig


def heatmap(matrix: np.ndarray, title: str, labels: Sequence[str] | None = None) -> go.Figure:
    """A plain heatmap (e.g. WWᵀ, or a d × K matrix of class means) on a scale symmetric about
    zero, with square cells (a 30 × 10 matrix is drawn tall, not squashed) and the values
    written in the cells only while they stay legible (≤ 12 columns, ≤ 150 cells)."""
    z = np.asarray(matrix)
    rows, cols = z.shape
    bound = float(np.abs(z).max()) or 1.0
    if labels is not None and len(labels) == rows == cols:
        x_labels = y_labels = [str(v) for v in labels]
    else:
        x_labels, y_labels = [str(v) for v in range(cols)], [str(v) for v in range(rows)]
    legible = cols <= 12 and rows * cols <= 150
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=x_labels,
            y=y_labels,
            zmin=-bound,
            zmax=bound,
            colorscale="RdBu_r",
            texttemplate="%{z:.2f}" if legible else None,
        )
    )
    fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain")
    fig.update_xaxes(constrain="domain")
    return layout(fig, title, height=int(np.clip(140 + 22 * rows, 320, 760)))


def bars(values: Sequence[float], title: str, x_title: str, y_title: str) -> go.Figure:
    fig = go.Figure(go.Bar(x=np.arange(1, len(values) + 1), y=list(values)))
    fig.update_xaxes(title=x_title)
    fig.update_yaxes(title=y_title)
    return layout(fig, title)


def curve(
    x: Sequence[float],
    y: Sequence[float],
    title: str,
    x_title: str,
    y_title: str,
    marker_x: float | None = None,
) -> go.Figure:
    fig = go.Figure(go.Scatter(x=list(x), y=list(y), mode="lines"))
    if marker_x is not None:
        fig.add_vline(x=marker_x, line_dash="dash", line_color="crimson", annotation_text="min")
    fig.update_xaxes(title=x_title)
    fig.update_yaxes(title=y_title)
    return layout(fig, title)
