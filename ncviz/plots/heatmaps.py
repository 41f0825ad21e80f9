"""Cosine heatmaps coloured around the ETF value −1/(C−1), their histograms, and matrix views
(AGOP)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from ncviz.metrics import CollapseResult
from ncviz.plots.style import layout

HEATMAP_IMAGE_THRESHOLD = 400  # classes; larger cosine matrices are drawn as an image
HISTOGRAM_BINS = 61  # odd: values at one point (an exact ETF) fall mid-bin, not on an edge


def class_order(
    result: CollapseResult, how: str = "label", matrix: str = "cos_means"
) -> np.ndarray:
    """Row order for heatmaps: by ``label``, by ``frequency`` (largest class first), or
    ``clustered`` (average-linkage on 1 − cosine)."""
    n = len(result.classes)
    if how == "frequency":
        return np.argsort(-result.arrays["class_counts"], kind="stable")
    if how == "clustered" and n > 2:
        from scipy.cluster.hierarchy import leaves_list, linkage
        from scipy.spatial.distance import squareform

        distance = np.clip(1.0 - result.arrays[matrix], 0.0, 2.0)
        np.fill_diagonal(distance, 0.0)
        return leaves_list(linkage(squareform((distance + distance.T) / 2), "average"))
    return np.arange(n)


def _rdbu(position: float) -> str:
    from plotly.colors import sample_colorscale

    return sample_colorscale("RdBu_r", [min(max(position, 0.0), 1.0)], colortype="rgb")[0]


def etf_colorscale(etf: float, steps: int = 10) -> list[list]:
    """RdBu on [−1, 1] with its white centre at the simplex-ETF cosine ``etf`` (−1/(C−1)): blue
    below, red above, so that departures from the ETF show in either direction."""
    middle = (etf + 1.0) / 2.0
    left = [[middle * i / steps, _rdbu(0.5 * i / steps)] for i in range(steps)]
    right = [
        [middle + (1 - middle) * i / steps, _rdbu(0.5 + 0.5 * i / steps)] for i in range(steps + 1)
    ]
    return left + right


def _etf_position(z: np.ndarray, etf: float) -> np.ndarray:
    """Where each value in [−1, 1] falls on :func:`etf_colorscale` (0…1)."""
    z = np.clip(np.nan_to_num(z), -1.0, 1.0)
    middle = (etf + 1.0) / 2.0
    below = middle * (z + 1.0) / max(etf + 1.0, 1e-12)
    above = middle + (1.0 - middle) * (z - etf) / max(1.0 - etf, 1e-12)
    return np.where(z <= etf, below, above)


def image_heatmap(z: np.ndarray, colorbar: dict, etf: float = 0.0) -> go.Figure:
    """A large matrix in [−1, 1] sent as one PNG (RdBu colours centred on ``etf``), with a
    matching colour bar."""
    from plotly.colors import sample_colorscale

    lut = np.array(
        [
            [int(v) for v in c[4:-1].split(",")]
            for c in sample_colorscale("RdBu_r", list(np.linspace(0, 1, 256)), colortype="rgb")
        ],
        dtype=np.uint8,
    )
    index = np.clip(np.round(_etf_position(z, etf) * 255), 0, 255).astype(np.uint8)
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(lut[index]).save(buffer, format="PNG")
    source = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    fig = go.Figure(go.Image(source=source, hoverinfo="skip"))
    fig.add_trace(
        go.Scatter(  # an invisible trace that carries the colour bar
            x=[None],
            y=[None],
            mode="markers",
            showlegend=False,
            marker=dict(
                colorscale=etf_colorscale(etf), cmin=-1, cmax=1, color=[0], colorbar=colorbar
            ),
        )
    )
    fig.update_yaxes(title="class (row order)")
    fig.update_xaxes(title="class")
    return fig


def cosine_heatmap(
    matrix: np.ndarray,
    labels: Sequence[str],
    title: str,
    order: np.ndarray | None = None,
    x_labels: Sequence[str] | None = None,
    deviation: bool = False,
) -> go.Figure:
    """Cosine matrix on [−1, 1], coloured around the simplex-ETF value −1/(C−1) (white there,
    marked on the colour bar). With ``deviation``, cos − (−1/(C−1)) off the diagonal on a scale
    symmetric about 0. Beyond ``HEATMAP_IMAGE_THRESHOLD`` classes it is drawn as an image."""
    n = len(labels)
    order = np.arange(n) if order is None else np.asarray(order)
    z = np.asarray(matrix, dtype=np.float64)[np.ix_(order, order)]
    ys = [str(labels[i]) for i in order]
    xs = [str((x_labels or labels)[i]) for i in order]
    etf = -1.0 / (n - 1)
    if deviation:
        z = z - etf
        if x_labels is None:
            np.fill_diagonal(z, np.nan)  # the diagonal is 1 by definition
        bound = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
        bound = bound or 1.0
        colorbar = dict(title="cos − ETF")
        if n > HEATMAP_IMAGE_THRESHOLD:
            return layout(
                image_heatmap(
                    z / bound,
                    colorbar
                    | dict(tickvals=[-1, 0, 1], ticktext=[f"{-bound:.2g}", "0", f"{bound:.2g}"]),
                ),
                title,
                height=520,
            )
        trace = go.Heatmap(
            z=z,
            x=xs,
            y=ys,
            zmin=-bound,
            zmax=bound,
            zmid=0.0,
            colorscale="RdBu_r",
            colorbar=colorbar,
            hovertemplate="%{y} · %{x}: %{z:+.4f}<extra></extra>",
        )
    else:
        colorbar = dict(
            title="cos",
            tickvals=[-1, etf, 0, 1],
            ticktext=["−1", f"ETF −1/(C−1) = {etf:.3f}", "0", "1"],
        )
        if n > HEATMAP_IMAGE_THRESHOLD:
            return layout(image_heatmap(z, colorbar, etf), title, height=520)
        trace = go.Heatmap(
            z=z,
            x=xs,
            y=ys,
            zmin=-1,
            zmax=1,
            colorscale=etf_colorscale(etf),
            colorbar=colorbar,
            hovertemplate="%{y} · %{x}: %{z:.3f}<extra></extra>",
        )
    fig = go.Figure(trace)
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category")
    label_every_class(fig, n)
    return layout(fig, title, height=520)


#: Up to this many categories an axis names every one (smaller type as they grow); beyond, the
#: names are on hover only — never every other one, never overlapping.
MAX_TICK_LABELS = 50


def tick_font_size(count: int, length_px: int = 440) -> int:
    """Font size (px) at which ``count`` labels fit along ``length_px`` of axis: 12 at most,
    6 at least.

    >>> tick_font_size(10), tick_font_size(60)
    (12, 6)
    """
    return int(min(12, max(6, 0.8 * length_px / max(count, 1))))


def label_every_class(fig: go.Figure, count: int) -> None:
    """Category axes of a class × class heatmap: every class named (``dtick`` 1, a font small
    enough not to overlap) up to ``MAX_TICK_LABELS``, else no names on the axes (hover has
    them) and the count in the axis titles."""
    if count <= MAX_TICK_LABELS:
        font = dict(size=tick_font_size(count))
        fig.update_xaxes(dtick=1, tickfont=font, tickangle=-90 if count > 20 else None)
        fig.update_yaxes(dtick=1, tickfont=font)
    else:
        fig.update_xaxes(showticklabels=False, title=f"{count} classes (hover for names)")
        fig.update_yaxes(showticklabels=False, title=f"{count} classes")


def matrix_csv(matrix: np.ndarray, labels: Sequence[str]) -> str:
    """A class × class matrix as CSV with the class names as header and first column (the
    download beside a heatmap, which above ``HEATMAP_IMAGE_THRESHOLD`` classes is an image).

    >>> print(matrix_csv(np.array([[1.0, -0.5], [-0.5, 1.0]]), ["cat", "dog"]), end="")
    class,cat,dog
    cat,1,-0.5
    dog,-0.5,1
    """
    import pandas as pd

    frame = pd.DataFrame(np.asarray(matrix), index=list(labels), columns=list(labels))
    return frame.rename_axis("class").to_csv(float_format="%.8g")


def cosine_histogram(matrix: np.ndarray, title: str, pairs_only: bool = True) -> go.Figure:
    """Histogram of the off-diagonal cosines (each pair once when ``pairs_only``) with the
    simplex-ETF value −1/(C−1) as a vertical line: at collapse every pair sits on it."""
    z = np.asarray(matrix, dtype=np.float64)
    n = len(z)
    if pairs_only:
        values = z[np.triu_indices(n, 1)]
    else:
        values = z[~np.eye(n, dtype=bool)]
    etf = -1.0 / (n - 1)
    # binned here: the browser gets 61 bars, not C² values (80 MB of JSON at C = 2,048)
    finite = values[np.isfinite(values)]
    low, high = (finite.min(), finite.max()) if len(finite) else (-1.0, 1.0)
    if high - low < 1e-6:  # at (or within rounding of) one value: a narrow window around it
        low, high = low - 0.005, high + 0.005
    counts, edges = np.histogram(finite, bins=HISTOGRAM_BINS, range=(low, high))
    fig = go.Figure(
        go.Bar(
            x=(edges[:-1] + edges[1:]) / 2,
            y=counts,
            width=np.diff(edges),
            marker_line_width=0,
            hovertext=[f"{lo:.4f} to {hi:.4f}" for lo, hi in itertools.pairwise(edges)],
        )
    )
    fig.update_layout(bargap=0)
    fig.add_vline(
        x=etf, line_dash="dash", line_color="crimson", annotation_text=f"ETF −1/(C−1) = {etf:.3f}"
    )
    fig.update_xaxes(title="cosine", range=[-1, 1])
    fig.update_yaxes(title="pairs")
    return layout(fig, title)


def agop_figure(matrix: np.ndarray, layer: str, top: int = 4) -> go.Figure:
    """The AGOP as a heatmap, and its top eigenvectors: as images when the layer's input is a
    square picture (e.g. 8×8 digits), else as curves."""
    from plotly.subplots import make_subplots

    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    order = np.argsort(values)[::-1][:top]
    side = math.isqrt(len(matrix))
    square = side * side == len(matrix) and side > 2
    # two short lines per narrow column: one long title each ran into its neighbours
    titles = ["AGOP"] + [f"eigenvector {i + 1}<br>λ = {values[j]:.3g}" for i, j in enumerate(order)]
    fig = make_subplots(
        rows=1,
        cols=1 + len(order),
        subplot_titles=titles,
        column_widths=[0.4] + [0.6 / max(1, len(order))] * len(order),
    )
    bound = float(np.abs(matrix).max()) or 1.0
    fig.add_trace(
        go.Heatmap(z=matrix, zmin=-bound, zmax=bound, colorscale="RdBu_r", showscale=False),
        row=1,
        col=1,
    )
    for i, j in enumerate(order, start=2):
        vector = vectors[:, j] * np.sign(vectors[np.argmax(np.abs(vectors[:, j])), j])
        if square:
            fig.add_trace(
                go.Heatmap(
                    z=vector.reshape(side, side), colorscale="RdBu_r", zmid=0, showscale=False
                ),
                row=1,
                col=i,
            )
            fig.update_yaxes(autorange="reversed", row=1, col=i)
        else:
            fig.add_trace(go.Scatter(y=vector, mode="lines", showlegend=False), row=1, col=i)
    fig.update_yaxes(autorange="reversed", row=1, col=1)
    fig.update_annotations(font_size=11)
    return layout(fig, f"AGOP at the input of {layer}", height=380)
