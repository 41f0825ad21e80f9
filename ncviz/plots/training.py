"""Metrics over depth and over training (terminal phase, learning-rate drops), stages, histories,
sweeps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ncviz.errors import OptionError
from ncviz.plots.style import PALETTE, layout, log_axis, metric_label


def depth_figure(table: pd.DataFrame, metric: str, checkpoints: Sequence[str]) -> go.Figure:
    """``metric`` against layer (in analysis order), one line per checkpoint."""
    fig = go.Figure()
    rows = table[table["metric"] == metric]
    values: list[float] = []
    for k, checkpoint in enumerate(checkpoints):
        sub = rows[rows["checkpoint"] == checkpoint]
        epoch = sub["epoch"].iloc[0] if len(sub) else None
        name = f"epoch {epoch}" if epoch is not None and not pd.isna(epoch) else checkpoint
        fig.add_trace(
            go.Scatter(
                x=list(sub["layer"]),
                y=list(sub["value"]),
                mode="lines+markers",
                name=name,
                line=dict(color=PALETTE[k % len(PALETTE)]),
            )
        )
        values += list(sub["value"])
    if log_axis(metric, values):
        fig.update_yaxes(type="log")
    fig.update_xaxes(title="layer", type="category")
    fig.update_yaxes(title=metric_label(metric))
    return layout(fig, f"{metric_label(metric)} across depth")


EPOCH_SCALES = ("auto", "log", "linear")
#: "auto" draws epochs on a log axis only when the run spans at least this many epochs.
LOG_EPOCHS_FROM = 50


def epoch_scale(epochs: Sequence[float], asked: str = "auto") -> str:
    """The epoch axis: ``asked``, or for "auto" a log axis (of epoch + 1, so that epoch 0 is
    shown) when the run spans at least :data:`LOG_EPOCHS_FROM` epochs — the terminal phase of a
    600-epoch run — and a linear one for a short run, whose late epochs a log axis would squeeze
    into its right edge.

    >>> epoch_scale([0, 5, 14]), epoch_scale([0, 10, 600]), epoch_scale([0, 600], "linear")
    ('linear', 'log', 'linear')
    """
    if asked not in EPOCH_SCALES:
        raise OptionError(f"the epoch axis must be one of {EPOCH_SCALES}, got {asked!r}.")
    if asked != "auto":
        return asked
    finite = [float(e) for e in epochs if e is not None and np.isfinite(float(e))]
    return "log" if finite and max(finite) >= LOG_EPOCHS_FROM else "linear"


def training_figure(
    table: pd.DataFrame,
    metric: str,
    layers: Sequence[str],
    onset: int | None = None,
    events: Sequence[Mapping[str, Any]] = (),
    references: Mapping[str, float] | None = None,
    scale: str = "auto",
) -> go.Figure:
    """``metric`` against epoch for each layer; the terminal-phase onset and the run's events
    (``{"step": 30, "text": "lr ×0.1"}``) as vertical lines, ``references`` (label → value,
    e.g. the ETF cosine) as horizontal ones. ``scale``: the epoch axis (:func:`epoch_scale`)."""
    rows = table[table["metric"] == metric]
    curves = {layer: rows[rows["layer"] == layer] for layer in layers}
    scale = epoch_scale(list(rows["epoch"].dropna()), scale)
    fig = epoch_curves(curves, metric, f"{metric_label(metric)} over training", onset, scale)
    mark_events(fig, events, scale)
    add_references(fig, references or {})
    return fig


def mark_events(fig: go.Figure, events: Sequence[Mapping[str, Any]], scale: str = "log") -> None:
    """A dotted vertical line per event; a text repeated at several steps (``lr ×0.1`` at each
    drop) is written once, at its first line, with every step it marks.

    >>> fig = go.Figure()
    >>> mark_events(fig, [{"step": 30, "text": "lr ×0.1"}, {"step": 60, "text": "lr ×0.1"}])
    >>> [a.text.strip() for a in fig.layout.annotations], len(fig.layout.shapes)
    (['lr ×0.1 (epochs 30, 60)'], 2)
    """
    steps: dict[str, list[int]] = {}
    for event in events:
        steps.setdefault(str(event.get("text", "")), []).append(int(event["step"]))
    for text, marked in steps.items():
        label = text if len(marked) == 1 else f"{text} (epochs {', '.join(map(str, marked))})"
        for index, step in enumerate(marked):
            mark_epoch(fig, step, label if index == 0 else "", "dot", "bottom", scale)


def add_references(fig: go.Figure, references: Mapping[str, float]) -> None:
    """Horizontal dashed lines at reference levels (label → value), named in the legend: a
    label written beside its line collides with the curves' and events' labels."""
    for k, (label, value) in enumerate(references.items()):
        fig.add_hline(
            y=value,
            line_dash="dash" if k % 2 == 0 else "dashdot",
            line_color="grey",
            showlegend=True,
            name=label,
        )


def compare_figure(
    tables: Mapping[str, pd.DataFrame], metric: str, layer: str, scale: str = "auto"
) -> go.Figure:
    """``metric`` over training for several runs (name → tidy table), one line per run — the
    overlay of TensorBoard's run picker. Each run is drawn at ``layer``, or at its own last
    layer where it has no such layer (named then in the legend: runs of different models).

    >>> row = dict(metric="nc1", epoch=0, value=1.0)
    >>> one = pd.DataFrame([dict(row, layer="fc:input")])
    >>> other = pd.DataFrame([dict(row, layer="conv:output"), dict(row, layer="head:input")])
    >>> [t.name for t in compare_figure({"mlp": one, "cnn": other}, "nc1", "fc:input").data]
    ['mlp', 'cnn (head:input)']
    """
    curves = {}
    for name, table in tables.items():
        at = overlay_layer(table, layer)
        label = name if at == layer else f"{name} ({at})"
        curves[label] = table[(table["metric"] == metric) & (table["layer"] == at)]
    return epoch_curves(curves, metric, f"{metric_label(metric)} at {layer}", scale=scale)


def overlay_layer(table: pd.DataFrame, layer: str) -> str:
    """``layer`` when ``table`` has it, else the table's last layer (in its order).

    >>> overlay_layer(pd.DataFrame({"layer": ["a", "b"]}), "c")
    'b'
    """
    layers = list(dict.fromkeys(table["layer"]))
    return layer if layer in layers or not layers else layers[-1]


def epoch_curves(
    curves: dict[str, pd.DataFrame],
    metric: str,
    title: str,
    onset: int | None = None,
    scale: str = "auto",
) -> go.Figure:
    """One line per named set of table rows, value against epoch (axis: :func:`epoch_scale`)."""
    epochs = [e for rows in curves.values() for e in rows["epoch"].dropna()]
    scale = epoch_scale(epochs, scale)
    shift = 1.0 if scale == "log" else 0.0
    fig = go.Figure()
    values: list[float] = []
    for k, (name, rows) in enumerate(curves.items()):
        rows = rows.dropna(subset=["epoch"]).sort_values("epoch")
        fig.add_trace(
            go.Scatter(
                x=rows["epoch"].astype(float) + shift,
                y=rows["value"],
                name=name,
                mode="lines+markers",
                line=dict(color=PALETTE[k % len(PALETTE)]),
            )
        )
        values += list(rows["value"])
    if onset is not None:
        mark_epoch(fig, onset, f"zero train error (epoch {onset})", "dash", "top", scale)
    if log_axis(metric, values):
        fig.update_yaxes(type="log")
    epoch_axis(fig, scale)
    fig.update_yaxes(title=metric_label(metric))
    return layout(fig, title)


def epoch_axis(fig: go.Figure, scale: str) -> None:
    """The x axis of epochs: log of epoch + 1, or linear in the epoch."""
    if scale == "log":
        fig.update_xaxes(type="log", title="epoch + 1 (log)")
    else:
        fig.update_xaxes(type="linear", title="epoch")


def mark_epoch(
    fig: go.Figure, epoch: int, text: str, dash: str, where: str, scale: str = "log"
) -> None:
    """A vertical line at ``epoch`` on the epoch axis (``scale`` as drawn), labelled ``text``."""
    x = epoch + 1 if scale == "log" else epoch
    fig.add_vline(x=x, line_dash=dash, line_color="grey")
    if not text:
        return
    # annotations on a log axis take log10 coordinates (add_vline's own would not)
    fig.add_annotation(
        x=np.log10(x) if scale == "log" else x,
        xref="x",
        y=1.0 if where == "top" else 0.0,
        yref="paper",
        text=f" {text}",
        showarrow=False,
        xanchor="left",
        yanchor=where,
        font=dict(size=11, color="grey"),
    )


def log_columns(log: Mapping[str, Sequence[Any]]) -> list[str]:
    """The columns of a run's log worth drawing: every numeric one (``epoch``/``step`` and
    the learning rate, a setting rather than an outcome, excluded), accuracies first.

    >>> log_columns({"epoch": [0, 1], "loss": [2.0, 1.0], "lr": [0.1, 0.1], "acc": [0.5, 0.9]})
    ['acc', 'loss']
    """
    numeric = [
        key
        for key, values in log.items()
        if key not in ("epoch", "step", "lr")
        and any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    ]
    return sorted(numeric, key=lambda key: "acc" not in key)


def accuracy_figure(log: dict, scale: str = "auto") -> go.Figure:
    """The run's log over training: accuracies on the left axis, losses (``rec.log(step,
    loss=…)``) on a log-scaled right axis when there are accuracies too, other numbers beside
    the accuracies; ``scale``: the epoch axis (:func:`epoch_scale`)."""
    scale = epoch_scale(list(log["epoch"]), scale)
    epochs = np.asarray(log["epoch"], dtype=float) + (1.0 if scale == "log" else 0.0)
    columns = log_columns(log)
    accuracies = [key for key in columns if "acc" in key]
    losses = [key for key in columns if "loss" in key]
    twin = bool(accuracies) and bool(losses)
    fig = go.Figure()
    for key in columns:
        values = [np.nan if v is None else v for v in log[key]]
        right = twin and key in losses
        line = dict(dash="dot") if right else None
        trace = go.Scatter(x=epochs, y=values, name=key.replace("_", " "), mode="lines", line=line)
        fig.add_trace(trace.update(yaxis="y2") if right else trace)
    epoch_axis(fig, scale)
    if twin:
        fig.update_layout(
            yaxis=dict(title="accuracy"),
            yaxis2=dict(title="loss (log)", type="log", overlaying="y", side="right"),
        )
    elif columns and len(losses) == len(columns):
        fig.update_yaxes(type="log")
    title = "Accuracy" if accuracies else "Loss" if losses else "Log"
    if twin:
        title = "Accuracy and loss"
    return layout(fig, f"{title} over training")


def stages_figure(table: pd.DataFrame, checkpoint: str) -> go.Figure:
    """NC1 through the stages of each linear layer at one checkpoint (input → S Vᵀ → U S Vᵀ →
    nonlinearity; Beaglehole et al. 2024), one line per layer, log scale."""
    stages = [
        ("stage_nc1_input", "input"),
        ("stage_nc1_svt", "S Vᵀ"),
        ("stage_nc1_usvt", "U S Vᵀ"),
        ("stage_nc1_activation", "nonlinearity"),
    ]
    rows = table[(table["checkpoint"] == checkpoint) & table["metric"].str.startswith("stage_")]
    fig = go.Figure()
    for k, (layer, group) in enumerate(rows.groupby("layer", sort=False)):
        values = dict(zip(group["metric"], group["value"]))
        present = [(label, values[key]) for key, label in stages if key in values]
        fig.add_trace(
            go.Scatter(
                x=[label for label, _ in present],
                y=[v for _, v in present],
                name=layer,
                mode="lines+markers",
                line=dict(color=PALETTE[k % len(PALETTE)]),
            )
        )
    fig.update_yaxes(type="log", title="NC1 (Tr Σ_W / Tr Σ_B)")
    fig.update_xaxes(title="stage of the layer", type="category")
    return layout(fig, "Where a layer removes within-class variability")


def history_figure(
    steps: Sequence[int],
    series: dict[str, Sequence[float]],
    title: str,
    log_y: bool = True,
    reference: tuple[str, float] | None = None,
    x_title: str = "step",
) -> go.Figure:
    """Several quantities against training step (or ``x_title``); an optional horizontal
    reference line."""
    fig = go.Figure()
    for k, (name, values) in enumerate(series.items()):
        fig.add_trace(
            go.Scatter(
                x=list(steps),
                y=list(values),
                name=name,
                mode="lines",
                line=dict(color=PALETTE[k % len(PALETTE)]),
            )
        )
    if reference is not None:
        fig.add_hline(
            y=reference[1],
            line_dash="dash",
            line_color="crimson",
            annotation_text=reference[0],
            annotation_position="top right",
        )
    if log_y:
        fig.update_yaxes(type="log")
    fig.update_xaxes(title=x_title)
    return layout(fig, title)


def sweep_figure(
    frame: pd.DataFrame,
    metrics: Sequence[str],
    x: str = "R",
    references: Mapping[str, float] | None = None,
) -> go.Figure:
    """``metrics`` against a swept setting (one point per run, log x): e.g. minority collapse
    against the imbalance ratio R (Fang et al. 2021, Fig. 3); ``references`` as dashed lines."""
    fig = go.Figure()
    for k, metric in enumerate(metrics):
        fig.add_trace(
            go.Scatter(
                x=frame[x].tolist(),
                y=frame[metric].tolist(),
                mode="lines+markers",
                name=metric_label(metric),
                text=frame["run"].tolist() if "run" in frame else None,
                line=dict(color=PALETTE[k % len(PALETTE)]),
            )
        )
    add_references(fig, references or {})
    fig.update_xaxes(type="log", title=x)
    return layout(fig, f"Across the sweep's runs (last checkpoint) against {x}")
