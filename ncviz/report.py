"""A self-contained HTML report (plotly.js inlined once) of figures and tables."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime, timezone

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
