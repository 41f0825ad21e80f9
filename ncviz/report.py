"""A self-contained HTML report (plotly.js inlined once) of figures and tables."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

import ncviz


def html_report(
    title: str,
    figures: Sequence[tuple[str, go.Figure]],
    tables: Sequence[tuple[str, pd.DataFrame]] = (),
    notes: str = "",
) -> str:
    """One HTML file that opens offline: headings, interactive figures, tables."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;"
        "padding:0 1em;color:#222}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ddd;padding:3px 6px;text-align:right}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>ncviz {ncviz.__version__} · {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}</p>",
    ]
    if notes:
        parts.append(f"<p>{html.escape(notes)}</p>")
    for index, (heading, figure) in enumerate(figures):
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        parts.append(
            figure.to_html(full_html=False, include_plotlyjs="inline" if index == 0 else False)
        )
    for heading, frame in tables:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        parts.append(frame.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0))
    parts.append("</body></html>")
    return "\n".join(parts)


def figure_html(figure: go.Figure) -> str:
    """One interactive figure as an HTML file that opens offline (plotly.js inlined: no CDN,
    for air-gapped clusters and archived supplementary material)."""
    return figure.to_html(include_plotlyjs=True, full_html=True)


Views = tuple[list[tuple[str, go.Figure]], list[tuple[str, pd.DataFrame]]]

TRAINING_CURVES = ("nc1", "nc2_etf_distance", "nc3", "nc4", "nrc1", "nrc2")


def standard_views(analysis: Any, checkpoint: str, layer: str, label: str | None = None) -> Views:
    """The figures and tables of a report on one checkpoint and layer of an
    :class:`~ncviz.analysis.Analysis`: geometry, norms, spectrum and angles; the headline
    metrics over training; with groups, the prototypes per group, their distances and a table
    per group. ``label`` names the checkpoint in headings (default: its file name)."""
    from ncviz import plots
    from ncviz.metrics import CollapseResult

    result = analysis.results[(checkpoint, layer)]
    figures: list[tuple[str, go.Figure]] = []
    if isinstance(result, CollapseResult):
        figures += [
            ("Geometry", plots.geometry_figure(result)),
            ("Norms", plots.norms_figure(result)),
            ("Spectra", plots.spectrum_figure(result)),
        ]
        if "cos_means" in result.arrays:
            labels = [str(c) for c in result.classes]
            matrix = plots.cosine_heatmap(
                result.arrays["cos_means"], labels, "cos of centred class means"
            )
            figures.append(("Angles", matrix))
    table = analysis.table
    if len(analysis.checkpoints) > 1:
        onset = analysis.terminal_phase_onset()
        present = set(table["metric"])
        figures += [
            (
                f"{metric} over training",
                plots.training_figure(table, metric, analysis.layers, onset, analysis.events),
            )
            for metric in TRAINING_CURVES
            if metric in present
        ]
    current = table[(table["checkpoint"] == checkpoint) & (table["layer"] == layer)]
    tables = [(f"Metrics at {label or checkpoint}, layer {layer}", current[["metric", "value"]])]
    grouped = analysis.group_results.get((checkpoint, layer))
    if grouped is not None:
        figures += [
            ("Prototypes per group", plots.prototype_figure(grouped)),
            ("Prototype distances", plots.distance_matrix_figure(grouped)),
        ]
        rows = analysis.group_table
        at = rows[(rows["checkpoint"] == checkpoint) & (rows["layer"] == layer)]
        wide = at.pivot_table(index="group", columns="metric", values="value").reset_index()
        tables.append(("Per group", wide))
    return figures, tables


def analysis_report(
    analysis: Any,
    checkpoint: str,
    layer: str,
    label: str | None = None,
    views: Views | None = None,
) -> str:
    """The HTML report of :func:`standard_views` (what the Export page and ``ncviz analyze
    --report`` write); ``views`` when they are already built."""
    figures, tables = views or standard_views(analysis, checkpoint, layer, label)
    # the source's own name, never where it lies (a shared server's folders are not for sharing)
    source = Path(str(analysis.source)).name or analysis.run
    notes = f"Source: {source} · checkpoint {checkpoint} · layer {layer}"
    return html_report(f"ncviz report — {analysis.run}", figures, tables, notes=notes)
