"""Across runs: frequency buckets, few-shot transfer, statistic-against-target scatter and
correlation bars."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from ncviz.plots.style import PALETTE, layout, metric_label


def buckets_figure(buckets: pd.DataFrame, metric: str) -> go.Figure:
    """``metric`` per frequency bucket (rows of :func:`ncviz.metrics.buckets.frequency_buckets`),
    with each bucket's number of classes under its bar."""
    shown = buckets.dropna(subset=[metric]) if metric in buckets else buckets.iloc[:0]
    fig = go.Figure(
        go.Bar(
            x=[f"{b}<br>{c:,} classes" for b, c in zip(shown["bucket"], shown["classes"])],
            y=shown[metric] if metric in shown else [],
        )
    )
    fig.update_xaxes(title="token frequency rank", type="category")
    fig.update_yaxes(title=metric_label(metric))
    return layout(fig, f"{metric_label(metric)} by frequency bucket")


def shots_figure(table: pd.DataFrame, names: str = "model") -> go.Figure:
    """k-shot nearest-class-mean accuracy of each run (``shot<k>_acc`` columns, with their
    ``_sd`` over episodes as error bars)."""
    fig = go.Figure()
    shots = [c for c in table.columns if c.startswith("shot") and c.endswith("_acc")]
    for k, column in enumerate(shots):
        sd = table.get(f"{column}_sd")
        fig.add_trace(
            go.Bar(
                x=table[names].astype(str),
                y=table[column],
                name=column.removesuffix("_acc"),
                error_y=None if sd is None else dict(type="data", array=sd),
                marker_color=PALETTE[k % len(PALETTE)],
            )
        )
    fig.update_yaxes(title="accuracy on the new classes", range=[0, 1])
    fig.update_xaxes(title=names, type="category")
    return layout(fig, "Few-shot accuracy (nearest class mean, mean ± sd over episodes)")


def study_scatter(
    frame: pd.DataFrame,
    metric: str,
    against: str,
    color: str | None = None,
    *,
    names: str | None = None,
    rho: float | None = None,
    log_x: bool = False,
    log_y: bool = False,
) -> go.Figure:
    """One point per run: ``metric`` (x) against ``against`` (y), coloured by ``color`` (a
    continuous scale for numbers with many values, one colour per value otherwise); the column
    ``names`` labels the points on hover."""
    rows = frame[[c for c in dict.fromkeys([metric, against, color]) if c is not None]].dropna(
        subset=[metric, against]
    )
    hover = frame.loc[rows.index, names].astype(str) if names is not None else None
    fig = go.Figure()
    values = rows[color] if color is not None else None
    if values is not None and pd.api.types.is_numeric_dtype(values) and values.nunique() > 12:
        fig.add_trace(
            go.Scatter(
                x=rows[metric],
                y=rows[against],
                mode="markers",
                text=hover,
                marker=dict(
                    color=values.astype(float),
                    colorscale="Viridis",
                    showscale=True,
                    colorbar=dict(title=color),
                    size=8,
                ),
            )
        )
    elif values is not None:
        for k, value in enumerate(sorted(values.dropna().unique(), key=str)):
            group = rows[values == value]
            fig.add_trace(
                go.Scatter(
                    x=group[metric],
                    y=group[against],
                    mode="markers",
                    name=f"{color}={value}",
                    text=hover.loc[group.index] if hover is not None else None,
                    marker=dict(color=PALETTE[k % len(PALETTE)], size=8),
                )
            )
    else:
        fig.add_trace(go.Scatter(x=rows[metric], y=rows[against], mode="markers", text=hover))
    title = f"{against} vs {metric}" + ("" if rho is None else f" (Spearman ρ = {rho:.3f})")
    layout(fig, title, xaxis_title=metric, yaxis_title=against, height=420)
    fig.update_xaxes(type="log" if log_x else "linear")
    fig.update_yaxes(type="log" if log_y else "linear")
    return fig


def correlation_figure(table: pd.DataFrame, against: str) -> go.Figure:
    """Spearman ρ of each collapse statistic with ``against`` and its bootstrap interval, sorted
    by |ρ|; outcome columns (``kind`` "outcome": losses, accuracies, …) stay in the table only,
    so they are never ranked among the statistics."""
    if "kind" in table:
        table = table[table["kind"] != "outcome"]
    rows = table.dropna(subset=["rho"]).iloc[::-1]
    rows = rows.reindex(rows["rho"].abs().sort_values().index)
    fig = go.Figure(
        go.Bar(
            x=rows["rho"],
            y=rows["metric"],
            orientation="h",
            error_x=dict(
                type="data",
                symmetric=False,
                array=rows["rho_high"] - rows["rho"],
                arrayminus=rows["rho"] - rows["rho_low"],
            ),
            marker_color=[PALETTE[0] if r < 0 else PALETTE[1] for r in rows["rho"]],
        )
    )
    layout(
        fig,
        f"Spearman ρ with {against} (bootstrap 95% interval)",
        xaxis_title="ρ",
        height=max(300, 22 * len(rows) + 120),
    )
    fig.update_xaxes(range=[-1.05, 1.05])
    return fig
