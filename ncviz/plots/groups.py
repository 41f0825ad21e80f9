"""Per-group (environment) bars and curves, prototypes in one PCA with the common ETF, distances,
multi-centre views."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ncviz.metrics.summaries import principal_projection
from ncviz.plots.style import PALETTE, layout, metric_label
from ncviz.plots.training import epoch_curves


def group_curves(table: pd.DataFrame, metric: str, layer: str) -> go.Figure:
    """``metric`` at ``layer`` over training, one line per group (rows of
    :attr:`ncviz.analysis.Analysis.group_table`)."""
    rows = table[(table["metric"] == metric) & (table["layer"] == layer)]
    curves = {str(group): part for group, part in rows.groupby("group", sort=False)}
    return epoch_curves(curves, metric, f"{metric_label(metric)} per group at {layer}")


def group_bars(table: pd.DataFrame, checkpoint: str, layer: str, metric: str) -> go.Figure:
    """``metric`` of every group at one checkpoint and layer."""
    rows = table[
        (table["checkpoint"] == checkpoint)
        & (table["layer"] == layer)
        & (table["metric"] == metric)
    ]
    fig = go.Figure(
        go.Bar(
            x=[str(g) for g in rows["group"]],
            y=rows["value"],
            marker_color=[PALETTE[k % len(PALETTE)] for k in range(len(rows))],
            texttemplate="%{y:.3g}",
            textposition="outside",
        )
    )
    fig.update_xaxes(title="group", type="category")
    fig.update_yaxes(title=metric_label(metric))
    return layout(fig, metric_label(metric), height=340)


GROUP_SYMBOLS = ["circle", "diamond", "square", "triangle-up", "x", "cross", "star", "hexagon"]


def prototype_figure(result: Any) -> go.Figure:
    """Every group's class means (centred and scaled as for ``prototype_distance``) in one 2-D
    PCA fitted on all of them, the common simplex ETF beside them; colour = class, symbol =
    group, a grey line joins a class's prototypes across groups (``result``: a GroupResult)."""
    from ncviz.metrics.groups import normalised_prototypes

    blocks = {
        g: (names, normalised_prototypes(means))
        for g, (names, means) in result.prototypes().items()
    }
    if result.common_etf is not None:
        blocks["ETF"] = (np.asarray(result.classes), normalised_prototypes(result.common_etf))
    stacked = np.vstack([rows for _, rows in blocks.values()])
    axes = principal_projection(stacked, 2)
    classes = [str(c) for c in result.classes]
    colour = {c: PALETTE[k % len(PALETTE)] for k, c in enumerate(classes)}
    fig = go.Figure()
    points: dict[str, list[tuple[float, float]]] = {}
    for k, (group, (names, rows)) in enumerate(blocks.items()):
        xy = rows @ axes.T
        labels = [str(n) for n in names]
        for label, (x, y) in zip(labels, xy):
            points.setdefault(label, []).append((x, y))
        fig.add_trace(
            go.Scatter(
                x=xy[:, 0],
                y=xy[:, 1],
                mode="markers",
                name=group,
                text=labels,
                marker=dict(
                    size=13 if group == "ETF" else 11,
                    color=[colour[n] for n in labels],
                    symbol="star-open" if group == "ETF" else GROUP_SYMBOLS[k % len(GROUP_SYMBOLS)],
                    line=dict(width=1, color="black"),
                ),
                hovertemplate=f"{group} · class %{{text}}<extra></extra>",
            )
        )
    for xy in points.values():
        if len(xy) > 1:
            line = np.asarray(xy)
            fig.add_trace(
                go.Scatter(
                    x=line[:, 0],
                    y=line[:, 1],
                    mode="lines",
                    hoverinfo="skip",
                    line=dict(color="lightgrey", width=1),
                    showlegend=False,
                )
            )
    fig.update_xaxes(title="PC 1")
    fig.update_yaxes(title="PC 2", scaleanchor="x")
    return layout(fig, "Class prototypes per group (normalised, shared PCA)", height=480)


def distance_matrix_figure(result: Any) -> go.Figure:
    """The groups' pairwise ``prototype_distance`` ‖M̂_g − M̂_g′‖_F as a heatmap."""
    z = np.asarray(result.prototype_distances, dtype=float)
    groups = [str(g) for g in result.groups]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=groups,
            y=groups,
            zmin=0,
            colorscale="Blues",
            texttemplate="%{z:.3f}",
            colorbar=dict(title="‖M̂_g − M̂_g′‖_F"),
            hovertemplate="%{y} · %{x}: %{z:.4f}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain", type="category")
    fig.update_xaxes(constrain="domain", type="category")
    return layout(fig, "Prototype distance between groups", height=400)


def multicentre_figure(
    result: Any,
    minority: Sequence[str] = (),
    titles: tuple[str, str] = (
        "per-class collapse to the nearest sub-cluster",
        "sub-clusters used against class size",
    ),
    nc_label: str = "(1/n_c)Σ‖h − s_a(i)‖² / Tr Σ_B",
) -> go.Figure:
    """Per class: its collapse (bars, minority classes darker, axis ``nc_label``) and its number
    of centres against its size (``result``: a MultiCentreResult, or an NCMCResult with
    ``titles`` and ``nc_label`` saying so)."""
    from plotly.subplots import make_subplots

    classes = [str(c) for c in result.classes]
    rare = set(map(str, minority))
    colours = ["#d62728" if c in rare else "#1f77b4" for c in classes]
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=titles,
    )
    fig.add_trace(
        go.Bar(
            x=classes,
            y=result.nc,
            marker_color=colours,
            showlegend=False,
            hovertemplate="class %{x}: %{y:.4g}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=result.counts,
            y=result.centres,
            mode="markers+text",
            text=classes,
            textposition="top center",
            marker=dict(size=11, color=colours),
            showlegend=False,
            hovertemplate="class %{text}: %{x} samples, %{y} centre(s)<extra></extra>",
        ),
        row=1,
        col=2,
    )
    fig.update_xaxes(title="class", type="category", row=1, col=1)
    fig.update_yaxes(title=nc_label, type="log", row=1, col=1)
    fig.update_xaxes(title="samples n_c", type="log", row=1, col=2)
    few = int(max(result.centres, default=1)) <= 12  # a tick per centre only when they are few
    fig.update_yaxes(title="centres", dtick=1 if few else None, rangemode="tozero", row=1, col=2)
    return layout(fig, "Collapse to several centres (red: minority classes)", height=420)
