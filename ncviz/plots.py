"""Plotly figure builders shared by the dashboard and the HTML report.

Each function takes finished results (tables, :class:`~ncviz.metrics.CollapseResult` arrays) and
returns a ``plotly.graph_objects.Figure``; none of them computes metrics. Axes use log scale for
metrics flagged ``log_scale`` in :mod:`ncviz.metrics.info`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from ncviz.metrics import METRICS, CollapseResult

PALETTE = qualitative.D3 + qualitative.Plotly
HEATMAP_IMAGE_THRESHOLD = 400  # classes; larger cosine matrices are drawn as an image
TEMPLATE = "plotly_white"


def metric_label(key: str) -> str:
    info = METRICS.get(key)
    return f"{info.label} ({key})" if info else key


def _log_axis(key: str, values: Sequence[float]) -> bool:
    info = METRICS.get(key)
    finite = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    return bool(info and info.log_scale and finite.size and (finite > 0).all())


def _layout(fig: go.Figure, title: str, **kwargs) -> go.Figure:
    fig.update_xaxes(exponentformat="power")
    fig.update_yaxes(exponentformat="power")
    fig.update_layout(template=TEMPLATE, title=title, margin=dict(l=60, r=20, t=60, b=50), **kwargs)
    return fig


# --- geometry -------------------------------------------------------------------------------


def fitted_simplex_etf(centred_means: np.ndarray) -> np.ndarray:
    """The simplex ETF closest to the centred class means (rows): ETF vertices scaled to the
    means' average norm, rotated onto them by orthogonal Procrustes (min ‖E Q − M‖_F)."""
    m = np.asarray(centred_means, dtype=np.float64)
    num_classes = len(m)
    centering = np.eye(num_classes) - 1.0 / num_classes
    basis, _, _ = np.linalg.svd(centering)
    etf = basis[:, : num_classes - 1] * np.sqrt(num_classes / (num_classes - 1))
    etf *= np.linalg.norm(m, axis=1).mean()
    u, _, vt = np.linalg.svd(etf.T @ m, full_matrices=False)
    return etf @ (u @ vt)


def principal_projection(rows: np.ndarray, dims: int = 3) -> np.ndarray:
    """The top ``dims`` right singular vectors of ``rows`` (dims × d), zero-padded if needed."""
    _, _, vt = np.linalg.svd(np.asarray(rows, dtype=np.float64), full_matrices=False)
    if len(vt) < dims:
        vt = np.vstack([vt, np.zeros((dims - len(vt), vt.shape[1]))])
    return vt[:dims]


def _centred_means(result: CollapseResult) -> np.ndarray:
    means = result.arrays["class_means"]
    if result.options.global_mean == "sample":
        counts = result.arrays["class_counts"]
        return means - (counts[:, None] * means).sum(axis=0) / counts.sum()
    return means - means.mean(axis=0)


def _geometry_traces(
    result: CollapseResult, axes: np.ndarray, show_weights: bool, show_etf: bool
) -> tuple[list, np.ndarray]:
    """The traces of one geometry view in the projection ``axes`` (3 × d), and every plotted
    point (to fit the axes): means as spokes from μ_G in their class colour, classifier rows as
    diamonds in the same colour labelled w_c, the best-fit simplex ETF as a thin wireframe."""
    centred = _centred_means(result)
    points = centred @ axes.T
    labels = [str(c) for c in result.classes]
    colours = [PALETTE[k % len(PALETTE)] for k in range(len(labels))]
    traces, shown = [], [np.zeros((1, 3)), points]
    for k, (point, label) in enumerate(zip(points, labels)):
        traces.append(go.Scatter3d(
            x=[0.0, point[0]], y=[0.0, point[1]], z=[0.0, point[2]],
            mode="lines+markers+text", text=["", label], textposition="top center",
            line=dict(color=colours[k], width=5), marker=dict(size=[0, 6], color=colours[k]),
            name="class means (from μ_G)", legendgroup="means", showlegend=k == 0,
            hovertext=f"class {label}",
        ))  # fmt: skip
    if show_weights and "class_weight" in result.arrays:
        weight = result.arrays["class_weight"]
        scale = np.linalg.norm(centred, axis=1).mean() / np.linalg.norm(weight, axis=1).mean()
        w_points = (weight * scale) @ axes.T
        shown.append(w_points)
        traces.append(go.Scatter3d(
            x=w_points[:, 0], y=w_points[:, 1], z=w_points[:, 2], mode="markers+text",
            marker=dict(symbol="diamond", size=5, color=colours,
                        line=dict(color="black", width=1)),
            text=[f"w{label}" for label in labels], textposition="bottom center",
            textfont=dict(size=10), name="classifier rows (scaled)",
        ))  # fmt: skip
    if show_etf and len(centred) > 2:
        etf_points = fitted_simplex_etf(centred) @ axes.T
        shown.append(etf_points)
        xs, ys, zs = [], [], []
        for i in range(len(etf_points)):
            for j in range(i + 1, len(etf_points)):
                for seq, coord in ((xs, 0), (ys, 1), (zs, 2)):
                    seq += [etf_points[i, coord], etf_points[j, coord], None]
        traces.append(go.Scatter3d(
            x=xs, y=ys, z=zs, mode="lines+markers",
            marker=dict(size=6, symbol="circle-open", color="rgb(90,90,90)"),
            line=dict(color="rgba(90,90,90,0.6)", width=1.5), name="ideal simplex ETF (best fit)",
        ))  # fmt: skip
    return traces, np.vstack(shown)


def _fitted_scene(points: np.ndarray) -> dict:
    """Axes that hold every plotted point with a 10% margin (nothing leaves the frame)."""
    low, high = points.min(axis=0), points.max(axis=0)
    pad = 0.1 * np.maximum(high - low, 1e-12)
    ranges = [[float(lo - p), float(hi + p)] for lo, hi, p in zip(low, high, pad)]
    return dict(
        aspectmode="data",
        xaxis=dict(title="PC1", range=ranges[0]),
        yaxis=dict(title="PC2", range=ranges[1]),
        zaxis=dict(title="PC3", range=ranges[2]),
    )


def _variance_share(centred: np.ndarray, dims: int = 3) -> float:
    s = np.linalg.svd(np.asarray(centred, dtype=np.float64), compute_uv=False) ** 2
    return float(s[:dims].sum() / s.sum()) if s.sum() > 0 else 1.0


def geometry_figure(
    result: CollapseResult, show_weights: bool = True, show_etf: bool = True
) -> go.Figure:
    """Centred class means (and classifier rows) in the top-3 principal directions of the means,
    with the best-fitting simplex ETF drawn as a wireframe; the title gives the share of the
    means' variance those 3 directions hold. W is scaled to the means' norm."""
    centred = _centred_means(result)
    axes = principal_projection(centred)
    traces, points = _geometry_traces(result, axes, show_weights, show_etf)
    fig = go.Figure(traces)
    fig.update_layout(scene=_fitted_scene(points), height=560)
    share = _variance_share(centred)
    return _layout(fig, f"Class means in their top-3 principal directions ({share:.0%} of "
                        "their variance)")  # fmt: skip


def geometry_animation(
    results: Mapping[str, CollapseResult], show_weights: bool = True, show_etf: bool = True
) -> go.Figure:
    """The geometry over a run's checkpoints (name → result, in order) with a play button: all
    frames in the principal directions of the last checkpoint's means, on fixed axes."""
    names = list(results)
    axes = principal_projection(_centred_means(results[names[-1]]))
    frames, everything = [], []
    for name in names:
        traces, points = _geometry_traces(results[name], axes, show_weights, show_etf)
        frames.append(go.Frame(data=traces, name=name))
        everything.append(points)
    fig = go.Figure(frames[0].data, frames=frames)
    steps = [
        dict(method="animate", label=name,
             args=[[name], dict(mode="immediate", frame=dict(duration=0, redraw=True))])
        for name in names
    ]  # fmt: skip
    fig.update_layout(
        scene=_fitted_scene(np.vstack(everything)),
        height=600,
        updatemenus=[dict(
            type="buttons", showactive=False, x=0.0, y=0.0, xanchor="left", yanchor="top",
            buttons=[dict(label="▶ play", method="animate", args=[None, dict(
                frame=dict(duration=500, redraw=True), fromcurrent=True)])],
        )],
        sliders=[dict(active=0, steps=steps, x=0.12, len=0.88, y=0.0,
                      currentvalue=dict(prefix="checkpoint: "))],
    )  # fmt: skip
    return _layout(fig, "Class means over training (projection of the last checkpoint)")


def norms_figure(result: CollapseResult) -> go.Figure:
    """Bar chart of ‖μ_c − μ_G‖ and ‖w_c‖ per class, each divided by its mean (equinorm = flat)."""
    labels = [str(c) for c in result.classes]
    norms = result.arrays["mean_norms"]
    fig = go.Figure(go.Bar(x=labels, y=norms / norms.mean(), name="class means"))
    if "weight_norms" in result.arrays:
        w = result.arrays["weight_norms"]
        fig.add_trace(go.Bar(x=labels, y=w / w.mean(), name="classifier rows"))
    fig.add_hline(y=1.0, line_dash="dot", line_color="grey")
    return _layout(
        fig,
        "Norm ÷ mean norm (equinorm: all at 1)",
        barmode="group",
        xaxis_title="class",
        yaxis_title="norm / mean norm",
    )


# --- angles ---------------------------------------------------------------------------------


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
    right = [[middle + (1 - middle) * i / steps, _rdbu(0.5 + 0.5 * i / steps)]
             for i in range(steps + 1)]  # fmt: skip
    return left + right


def _etf_position(z: np.ndarray, etf: float) -> np.ndarray:
    """Where each value in [−1, 1] falls on :func:`etf_colorscale` (0…1)."""
    z = np.clip(np.nan_to_num(z), -1.0, 1.0)
    middle = (etf + 1.0) / 2.0
    below = middle * (z + 1.0) / max(etf + 1.0, 1e-12)
    above = middle + (1.0 - middle) * (z - etf) / max(1.0 - etf, 1e-12)
    return np.where(z <= etf, below, above)


def _image_heatmap(z: np.ndarray, colorbar: dict, etf: float = 0.0) -> go.Figure:
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
            return _layout(_image_heatmap(z / bound, colorbar | dict(
                tickvals=[-1, 0, 1], ticktext=[f"{-bound:.2g}", "0", f"{bound:.2g}"])),
                title, height=520)  # fmt: skip
        trace = go.Heatmap(z=z, x=xs, y=ys, zmin=-bound, zmax=bound, zmid=0.0,
                           colorscale="RdBu_r", colorbar=colorbar,
                           hovertemplate="%{y} · %{x}: %{z:+.4f}<extra></extra>")  # fmt: skip
    else:
        colorbar = dict(
            title="cos",
            tickvals=[-1, etf, 0, 1],
            ticktext=["−1", f"ETF −1/(C−1) = {etf:.3f}", "0", "1"],
        )
        if n > HEATMAP_IMAGE_THRESHOLD:
            return _layout(_image_heatmap(z, colorbar, etf), title, height=520)
        trace = go.Heatmap(z=z, x=xs, y=ys, zmin=-1, zmax=1, colorscale=etf_colorscale(etf),
                           colorbar=colorbar,
                           hovertemplate="%{y} · %{x}: %{z:.3f}<extra></extra>")  # fmt: skip
    fig = go.Figure(trace)
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category")
    return _layout(fig, title, height=520)


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
    fig = go.Figure(go.Histogram(x=values[np.isfinite(values)], nbinsx=60))
    fig.add_vline(x=etf, line_dash="dash", line_color="crimson",
                  annotation_text=f"ETF −1/(C−1) = {etf:.3f}")  # fmt: skip
    fig.update_xaxes(title="cosine", range=[-1, 1])
    fig.update_yaxes(title="pairs")
    return _layout(fig, title)


# --- spectra --------------------------------------------------------------------------------


SPECTRUM_FLOOR = 1e-13  # s_k/s_1 below this is rounding noise of float64 sums, not signal
SPECTRA = {"sv_means": "class means M", "sv_weights": "classifier W",
           "sv_features": "features (cov.)"}  # fmt: skip


def _spectra_figure(spectra: dict[str, np.ndarray], tau: float, title: str) -> go.Figure:
    """Singular values divided by the largest (log scale), one line per name, the rank threshold
    τ dashed. Values below float64 precision (s_k/s_1 < 1e-13) are drawn on a grey band at the
    floor as ▼ (they are numerically zero) instead of stretching the axis to 1e-17."""
    fig = go.Figure()
    for k, (name, values) in enumerate(spectra.items()):
        s = np.asarray(values, dtype=float)
        s = s / s[0] if len(s) and s[0] > 0 else s
        below = s < SPECTRUM_FLOOR
        fig.add_trace(
            go.Scatter(
                x=np.arange(1, len(s) + 1),
                y=np.maximum(s, SPECTRUM_FLOOR),
                mode="lines+markers",
                name=name,
                line=dict(color=PALETTE[k % len(PALETTE)]),
                marker=dict(symbol=np.where(below, "triangle-down", "circle").tolist()),
                customdata=s,
                hovertemplate="k = %{x}: s_k/s_1 = %{customdata:.3g}<extra>" + name + "</extra>",
            )
        )
    fig.add_hrect(y0=SPECTRUM_FLOOR / 3, y1=SPECTRUM_FLOOR, fillcolor="lightgrey", opacity=0.5,
                  line_width=0, annotation_text="float64 precision: numerically zero",
                  annotation_position="bottom left")  # fmt: skip
    fig.add_hline(
        y=tau,
        line_dash="dash",
        line_color="crimson",
        annotation_text=f"τ = {tau:g}",
        annotation_position="bottom right",
    )
    fig.update_yaxes(type="log", title="s_k / s_1")
    fig.update_xaxes(title="k")
    return _layout(fig, title)


def spectrum_figure(result: CollapseResult, tau: float = 1e-2, top: int | None = None) -> go.Figure:
    """Normalised singular values (s_k / s_1, log scale) of the centred means M, of W and of the
    features (all of them, or the ``top`` largest), with the rank threshold τ."""
    spectra = {
        name: result.arrays[key][:top]
        for key, name in SPECTRA.items()
        if key in result.arrays and len(result.arrays[key])
    }
    shown = "" if top is None else f" (top {top})"
    return _spectra_figure(spectra, tau, f"Singular-value spectra{shown}")


def layers_spectrum_figure(
    results: Mapping[str, CollapseResult],
    key: str = "sv_means",
    tau: float = 1e-2,
    top: int | None = None,
) -> go.Figure:
    """One spectrum (``key``: sv_means, sv_weights or sv_features) for every layer, overlaid —
    the low-rank bias across depth."""  # fmt: skip
    spectra = {layer: r.arrays[key][:top] for layer, r in results.items()
               if key in r.arrays and len(r.arrays[key])}  # fmt: skip
    return _spectra_figure(spectra, tau, f"{SPECTRA.get(key, key)} across layers")


# --- curves over depth and training ---------------------------------------------------------


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
    if _log_axis(metric, values):
        fig.update_yaxes(type="log")
    fig.update_xaxes(title="layer", type="category")
    fig.update_yaxes(title=metric_label(metric))
    return _layout(fig, f"{metric_label(metric)} across depth")


def decay_rate(values: Sequence[float]) -> float:
    """Geometric per-layer decay: exp(slope of log value against layer index) (He & Su 2023);
    < 1 means the metric shrinks by that factor per layer."""
    y = np.log(np.asarray(values, dtype=float))
    if len(y) < 2 or not np.isfinite(y).all():
        return float("nan")
    slope = np.polyfit(np.arange(len(y)), y, 1)[0]
    return float(np.exp(slope))


def training_figure(
    table: pd.DataFrame,
    metric: str,
    layers: Sequence[str],
    onset: int | None = None,
    events: Sequence[Mapping[str, Any]] = (),
    references: Mapping[str, float] | None = None,
) -> go.Figure:
    """``metric`` against epoch for each layer; the terminal-phase onset and the run's events
    (``{"step": 30, "text": "lr ×0.1"}``) as vertical lines, ``references`` (label → value,
    e.g. the ETF cosine) as horizontal ones. Epochs are drawn on a log axis as epoch + 1 so that
    epoch 0 is shown."""
    rows = table[table["metric"] == metric]
    curves = {layer: rows[rows["layer"] == layer] for layer in layers}
    fig = _epoch_curves(curves, metric, f"{metric_label(metric)} over training", onset)
    for event in events:
        _mark_epoch(fig, int(event["step"]), str(event.get("text", "")), "dot", "bottom")
    for label, value in (references or {}).items():
        fig.add_hline(y=value, line_dash="dash", line_color="grey", annotation_text=label,
                      annotation_position="bottom right")  # fmt: skip
    return fig


def compare_figure(tables: dict[str, pd.DataFrame], metric: str, layer: str) -> go.Figure:
    """``metric`` at ``layer`` over training for several runs (name → tidy table)."""
    curves = {
        name: table[(table["metric"] == metric) & (table["layer"] == layer)]
        for name, table in tables.items()
    }
    return _epoch_curves(curves, metric, f"{metric_label(metric)} at {layer}")


def _epoch_curves(
    curves: dict[str, pd.DataFrame], metric: str, title: str, onset: int | None = None
) -> go.Figure:
    """One line per named set of table rows, value against epoch + 1 on a log axis."""
    fig = go.Figure()
    values: list[float] = []
    for k, (name, rows) in enumerate(curves.items()):
        rows = rows.dropna(subset=["epoch"]).sort_values("epoch")
        fig.add_trace(
            go.Scatter(
                x=rows["epoch"].astype(float) + 1,
                y=rows["value"],
                name=name,
                mode="lines+markers",
                line=dict(color=PALETTE[k % len(PALETTE)]),
            )
        )
        values += list(rows["value"])
    if onset is not None:
        _mark_epoch(fig, onset, f"zero train error (epoch {onset})", "dash", "top")
    if _log_axis(metric, values):
        fig.update_yaxes(type="log")
    fig.update_xaxes(type="log", title="epoch + 1")
    fig.update_yaxes(title=metric_label(metric))
    return _layout(fig, title)


def _mark_epoch(fig: go.Figure, epoch: int, text: str, dash: str, where: str) -> None:
    """A vertical line at ``epoch`` on the log(epoch + 1) axis, labelled ``text``."""
    fig.add_vline(x=epoch + 1, line_dash=dash, line_color="grey")
    # annotations on a log axis take log10 coordinates (add_vline's own would not)
    fig.add_annotation(
        x=np.log10(epoch + 1),
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
    """The columns of a run's log worth drawing: accuracies if any, else losses, else every
    numeric column (``epoch``/``step`` excluded)."""
    numeric = [
        key
        for key, values in log.items()
        if key not in ("epoch", "step")
        and any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    ]
    for marker in ("acc", "loss"):
        chosen = [key for key in numeric if marker in key]
        if chosen:
            return chosen
    return numeric


def accuracy_figure(log: dict) -> go.Figure:
    """The run's log over training: accuracy columns (e.g. train/test accuracy) if it has them,
    else losses (log axis), else every numeric column."""
    epochs = np.asarray(log["epoch"], dtype=float) + 1
    columns = log_columns(log)
    fig = go.Figure()
    for key in columns:
        values = [np.nan if v is None else v for v in log[key]]
        fig.add_trace(go.Scatter(x=epochs, y=values, name=key.replace("_", " "), mode="lines"))
    fig.update_xaxes(type="log", title="epoch + 1")
    losses = bool(columns) and all("loss" in key for key in columns)
    if losses:
        fig.update_yaxes(type="log")
    title = "Accuracy" if any("acc" in key for key in columns) else "Loss" if losses else "Log"
    return _layout(fig, f"{title} over training")


# --- imbalance and regression ---------------------------------------------------------------


def per_class_table(
    result: CollapseResult,
    split: str = "analysed",
    training_counts: Mapping[str, int] | None = None,
) -> pd.DataFrame:
    """n_c (on the analysed ``split``; the training counts beside it when known), ‖μ_c − μ_G‖,
    ‖w_c‖, σ_c²/‖μ_c − μ_G‖², cos(w_c, μ_c − μ_G), recall (docs/metrics.md)."""
    a = result.arrays
    minority = set(np.asarray(result.minority_classes).astype(str))
    frame = pd.DataFrame(
        {
            "class": [str(c) for c in result.classes],
            "minority": [str(c) in minority for c in result.classes],
            f"n_c ({split})": a["class_counts"],
            "‖μ_c − μ_G‖": a["mean_norms"],
            "‖w_c‖": a.get("weight_norms", np.full(len(result.classes), np.nan)),
            "σ_c²/‖μ_c − μ_G‖²": a["variability"],
            "cos(w_c, μ_c − μ_G)": a.get("alignment", np.full(len(result.classes), np.nan)),
            "recall": a.get("recall", a["ncc_recall"]),
        }
    )
    if training_counts:
        counts = [training_counts.get(str(c)) for c in result.classes]
        frame.insert(3, "n_c (training)", pd.array(counts, dtype="Int64"))
    return frame


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
            z=z, x=x_labels, y=y_labels, zmin=-bound, zmax=bound, colorscale="RdBu_r",
            texttemplate="%{z:.2f}" if legible else None,
        )
    )  # fmt: skip
    fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain")
    fig.update_xaxes(constrain="domain")
    return _layout(fig, title, height=int(np.clip(140 + 22 * rows, 320, 760)))


def stages_figure(table: pd.DataFrame, checkpoint: str) -> go.Figure:
    """NC1 through the stages of each linear layer at one checkpoint (input → S Vᵀ → U S Vᵀ →
    nonlinearity; Beaglehole et al. 2024), one line per layer, log scale."""
    stages = [("stage_nc1_input", "input"), ("stage_nc1_svt", "S Vᵀ"),
              ("stage_nc1_usvt", "U S Vᵀ"), ("stage_nc1_activation", "nonlinearity")]  # fmt: skip
    rows = table[(table["checkpoint"] == checkpoint) & table["metric"].str.startswith("stage_")]
    fig = go.Figure()
    for k, (layer, group) in enumerate(rows.groupby("layer", sort=False)):
        values = dict(zip(group["metric"], group["value"]))
        present = [(label, values[key]) for key, label in stages if key in values]
        fig.add_trace(go.Scatter(
            x=[label for label, _ in present], y=[v for _, v in present], name=layer,
            mode="lines+markers", line=dict(color=PALETTE[k % len(PALETTE)]),
        ))  # fmt: skip
    fig.update_yaxes(type="log", title="NC1 (Tr Σ_W / Tr Σ_B)")
    fig.update_xaxes(title="stage of the layer", type="category")
    return _layout(fig, "Where a layer removes within-class variability")


def agop_figure(matrix: np.ndarray, layer: str, top: int = 4) -> go.Figure:
    """The AGOP as a heatmap, and its top eigenvectors: as images when the layer's input is a
    square picture (e.g. 8×8 digits), else as curves."""
    from plotly.subplots import make_subplots

    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    order = np.argsort(values)[::-1][:top]
    side = math.isqrt(len(matrix))
    square = side * side == len(matrix) and side > 2
    titles = ["AGOP"] + [f"eigenvector {i + 1} (λ = {values[j]:.3g})" for i, j in enumerate(order)]
    fig = make_subplots(rows=1, cols=1 + len(order), subplot_titles=titles,
                        column_widths=[0.4] + [0.6 / max(1, len(order))] * len(order))  # fmt: skip
    bound = float(np.abs(matrix).max()) or 1.0
    fig.add_trace(go.Heatmap(z=matrix, zmin=-bound, zmax=bound, colorscale="RdBu_r",
                             showscale=False), row=1, col=1)  # fmt: skip
    for i, j in enumerate(order, start=2):
        vector = vectors[:, j] * np.sign(vectors[np.argmax(np.abs(vectors[:, j])), j])
        if square:
            fig.add_trace(go.Heatmap(z=vector.reshape(side, side), colorscale="RdBu_r",
                                     zmid=0, showscale=False), row=1, col=i)  # fmt: skip
            fig.update_yaxes(autorange="reversed", row=1, col=i)
        else:
            fig.add_trace(go.Scatter(y=vector, mode="lines", showlegend=False), row=1, col=i)
    fig.update_yaxes(autorange="reversed", row=1, col=1)
    return _layout(fig, f"AGOP at the input of {layer}", height=360)


def bars(values: Sequence[float], title: str, x_title: str, y_title: str) -> go.Figure:
    fig = go.Figure(go.Bar(x=np.arange(1, len(values) + 1), y=list(values)))
    fig.update_xaxes(title=x_title)
    fig.update_yaxes(title=y_title)
    return _layout(fig, title)


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
    return _layout(fig, f"{metric_label(metric)} by frequency bucket")


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
    return _layout(fig, title)


DENSITY_THRESHOLD = 50_000  # points; beyond this an embedding is drawn as a density image


def embedding_figure(
    coords: np.ndarray,
    labels: Sequence[str],
    title: str,
    centres: np.ndarray | None = None,
    values: np.ndarray | None = None,
    value_name: str = "target",
) -> go.Figure:
    """2-D embedding of samples coloured by class, class centres as large crosses — or, with
    ``values`` (a continuous target), on a colour scale. Beyond ``DENSITY_THRESHOLD`` points the
    samples are drawn as a 2-D density image instead."""
    fig = go.Figure()
    if values is not None and len(coords) <= DENSITY_THRESHOLD:
        fig.add_trace(go.Scattergl(
            x=coords[:, 0], y=coords[:, 1], mode="markers", name=value_name,
            marker=dict(size=4, opacity=0.8, color=np.asarray(values), colorscale="Viridis",
                        colorbar=dict(title=value_name)),
        ))  # fmt: skip
        return _layout(fig, title, height=560)
    labels = np.asarray([str(x) for x in labels])
    classes = sorted(set(labels), key=lambda s: (len(s), s))
    if len(coords) > DENSITY_THRESHOLD:
        fig.add_trace(
            go.Histogram2d(
                x=coords[:, 0],
                y=coords[:, 1],
                nbinsx=300,
                nbinsy=300,
                colorscale="Greys",
                zauto=True,
                name="density",
                colorbar=dict(title="samples"),
            )
        )
    else:
        for k, cls in enumerate(classes):
            mask = labels == cls
            fig.add_trace(
                go.Scattergl(
                    x=coords[mask, 0],
                    y=coords[mask, 1],
                    mode="markers",
                    name=cls,
                    marker=dict(size=4, opacity=0.7, color=PALETTE[k % len(PALETTE)]),
                )
            )
    if centres is not None:
        fig.add_trace(
            go.Scatter(
                x=centres[:, 0],
                y=centres[:, 1],
                mode="markers+text",
                text=classes,
                textposition="top center",
                name="class means",
                marker=dict(symbol="x", size=12, color="crimson"),
            )
        )
    return _layout(fig, title, height=560)


# --- theory lab -----------------------------------------------------------------------------


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
    return _layout(fig, title)


def ranks_figure(
    steps: Sequence[int], ranks: Sequence[Sequence[int]], prefix: str, first_layer: int = 1
) -> go.Figure:
    """Numerical rank of each layer's class-mean matrix against training step."""
    per_layer = np.asarray(ranks).T if len(ranks) else np.zeros((0, 0))
    series = {f"{prefix}{first_layer + i}": row for i, row in enumerate(per_layer)}
    fig = history_figure(steps, series, f"Rank of the class means ({prefix}l)", log_y=False)
    fig.update_yaxes(title="numerical rank (τ = 0.01)", dtick=1)
    return fig


def layer_spectra_figure(
    matrices: Sequence[np.ndarray], prefix: str = "H", tau: float = 1e-2
) -> go.Figure:
    """Normalised singular values of each layer's class-mean matrix (log scale)."""
    spectra = {
        f"{prefix}{k + 1}": np.linalg.svd(np.asarray(m), compute_uv=False)
        for k, m in enumerate(matrices)
    }
    return _spectra_figure(spectra, tau, "Spectra of the class-mean matrices")


# --- study across runs ----------------------------------------------------------------------


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
        fig.add_trace(go.Scatter(
            x=frame[x].tolist(), y=frame[metric].tolist(), mode="lines+markers",
            name=metric_label(metric), text=frame["run"].tolist() if "run" in frame else None,
            line=dict(color=PALETTE[k % len(PALETTE)]),
        ))  # fmt: skip
    for label, value in (references or {}).items():
        fig.add_hline(y=value, line_dash="dash", line_color="grey", annotation_text=label)
    fig.update_xaxes(type="log", title=x)
    return _layout(fig, f"Across the sweep's runs (last checkpoint) against {x}")


def shots_figure(table: pd.DataFrame, names: str = "model") -> go.Figure:
    """k-shot nearest-class-mean accuracy of each run (``shot<k>_acc`` columns, with their
    ``_sd`` over episodes as error bars)."""
    fig = go.Figure()
    shots = [c for c in table.columns if c.startswith("shot") and c.endswith("_acc")]
    for k, column in enumerate(shots):
        sd = table.get(f"{column}_sd")
        fig.add_trace(go.Bar(
            x=table[names].astype(str), y=table[column], name=column.removesuffix("_acc"),
            error_y=None if sd is None else dict(type="data", array=sd),
            marker_color=PALETTE[k % len(PALETTE)],
        ))  # fmt: skip
    fig.update_yaxes(title="accuracy on the new classes", range=[0, 1])
    fig.update_xaxes(title=names, type="category")
    return _layout(fig, "Few-shot accuracy (nearest class mean, mean ± sd over episodes)")


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
        fig.add_trace(go.Scatter(
            x=rows[metric], y=rows[against], mode="markers", text=hover,
            marker=dict(color=values.astype(float), colorscale="Viridis", showscale=True,
                        colorbar=dict(title=color), size=8),
        ))  # fmt: skip
    elif values is not None:
        for k, value in enumerate(sorted(values.dropna().unique(), key=str)):
            group = rows[values == value]
            fig.add_trace(go.Scatter(
                x=group[metric], y=group[against], mode="markers", name=f"{color}={value}",
                text=hover.loc[group.index] if hover is not None else None,
                marker=dict(color=PALETTE[k % len(PALETTE)], size=8),
            ))  # fmt: skip
    else:
        fig.add_trace(go.Scatter(x=rows[metric], y=rows[against], mode="markers", text=hover))
    title = f"{against} vs {metric}" + ("" if rho is None else f" (Spearman ρ = {rho:.3f})")
    _layout(fig, title, xaxis_title=metric, yaxis_title=against, height=420)
    fig.update_xaxes(type="log" if log_x else "linear")
    fig.update_yaxes(type="log" if log_y else "linear")
    return fig


def correlation_figure(table: pd.DataFrame, against: str) -> go.Figure:
    """Spearman ρ of each metric with ``against`` and its bootstrap interval, sorted by |ρ|."""
    rows = table.dropna(subset=["rho"]).iloc[::-1]
    rows = rows.reindex(rows["rho"].abs().sort_values().index)
    fig = go.Figure(go.Bar(
        x=rows["rho"], y=rows["metric"], orientation="h",
        error_x=dict(type="data", symmetric=False, array=rows["rho_high"] - rows["rho"],
                     arrayminus=rows["rho"] - rows["rho_low"]),
        marker_color=[PALETTE[0] if r < 0 else PALETTE[1] for r in rows["rho"]],
    ))  # fmt: skip
    _layout(fig, f"Spearman ρ with {against} (bootstrap 95% interval)",
            xaxis_title="ρ", height=max(300, 22 * len(rows) + 120))  # fmt: skip
    fig.update_xaxes(range=[-1.05, 1.05])
    return fig


# --- groups (environments) --------------------------------------------------------------------


def group_curves(table: pd.DataFrame, metric: str, layer: str) -> go.Figure:
    """``metric`` at ``layer`` over training, one line per group (rows of
    :attr:`ncviz.analysis.Analysis.group_table`)."""
    rows = table[(table["metric"] == metric) & (table["layer"] == layer)]
    curves = {str(group): part for group, part in rows.groupby("group", sort=False)}
    return _epoch_curves(curves, metric, f"{metric_label(metric)} per group at {layer}")


def group_bars(table: pd.DataFrame, checkpoint: str, layer: str, metric: str) -> go.Figure:
    """``metric`` of every group at one checkpoint and layer."""
    rows = table[(table["checkpoint"] == checkpoint) & (table["layer"] == layer)
                 & (table["metric"] == metric)]  # fmt: skip
    fig = go.Figure(
        go.Bar(x=[str(g) for g in rows["group"]], y=rows["value"],
               marker_color=[PALETTE[k % len(PALETTE)] for k in range(len(rows))],
               texttemplate="%{y:.3g}", textposition="outside")
    )  # fmt: skip
    fig.update_xaxes(title="group", type="category")
    fig.update_yaxes(title=metric_label(metric))
    return _layout(fig, metric_label(metric), height=340)


GROUP_SYMBOLS = ["circle", "diamond", "square", "triangle-up", "x", "cross", "star", "hexagon"]


def prototype_figure(result: Any) -> go.Figure:
    """Every group's class means (centred and scaled as for ``prototype_distance``) in one 2-D
    PCA fitted on all of them, the common simplex ETF beside them; colour = class, symbol =
    group, a grey line joins a class's prototypes across groups (``result``: a GroupResult)."""
    from ncviz.metrics.groups import normalised_prototypes

    blocks = {g: (names, normalised_prototypes(means)) for g, (names, means)
              in result.prototypes().items()}  # fmt: skip
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
        fig.add_trace(go.Scatter(
            x=xy[:, 0], y=xy[:, 1], mode="markers", name=group, text=labels,
            marker=dict(size=13 if group == "ETF" else 11, color=[colour[n] for n in labels],
                        symbol="star-open" if group == "ETF"
                        else GROUP_SYMBOLS[k % len(GROUP_SYMBOLS)],
                        line=dict(width=1, color="black")),
            hovertemplate=f"{group} · class %{{text}}<extra></extra>",
        ))  # fmt: skip
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
    return _layout(fig, "Class prototypes per group (normalised, shared PCA)", height=480)


def distance_matrix_figure(result: Any) -> go.Figure:
    """The groups' pairwise ``prototype_distance`` ‖M̂_g − M̂_g′‖_F as a heatmap."""
    z = np.asarray(result.prototype_distances, dtype=float)
    groups = [str(g) for g in result.groups]
    fig = go.Figure(
        go.Heatmap(z=z, x=groups, y=groups, zmin=0, colorscale="Blues",
                   texttemplate="%{z:.3f}", colorbar=dict(title="‖M̂_g − M̂_g′‖_F"),
                   hovertemplate="%{y} · %{x}: %{z:.4f}<extra></extra>")
    )  # fmt: skip
    fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain", type="category")
    fig.update_xaxes(constrain="domain", type="category")
    return _layout(fig, "Prototype distance between groups", height=400)


# --- multiple centres (NCMC) ----------------------------------------------------------------


def multicentre_figure(result: Any, minority: Sequence[str] = ()) -> go.Figure:
    """Per class: its collapse to the nearest of its centres (bars, minority classes darker) and
    the number of centres it uses against its size (``result``: a MultiCentreResult)."""
    from plotly.subplots import make_subplots

    classes = [str(c) for c in result.classes]
    rare = set(map(str, minority))
    colours = ["#d62728" if c in rare else "#1f77b4" for c in classes]
    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        "per-class collapse to the nearest centre", "centres used against class size"))  # fmt: skip
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
    fig.add_trace(go.Scatter(
        x=result.counts, y=result.centres, mode="markers+text", text=classes,
        textposition="top center", marker=dict(size=11, color=colours), showlegend=False,
        hovertemplate="class %{text}: %{x} samples, %{y} centre(s)<extra></extra>",
    ), row=1, col=2)  # fmt: skip
    fig.update_xaxes(title="class", type="category", row=1, col=1)
    fig.update_yaxes(title="(1/n_c)Σ‖h − s_a(i)‖² / Tr Σ_B", type="log", row=1, col=1)
    fig.update_xaxes(title="samples n_c", type="log", row=1, col=2)
    fig.update_yaxes(title="centres", dtick=1, rangemode="tozero", row=1, col=2)
    return _layout(fig, "Collapse to multiple centres (red: minority classes)", height=420)


def multicentre_table(result: Any, minority: Sequence[str] = ()) -> pd.DataFrame:
    """The per-class rows of a MultiCentreResult, minority classes marked."""
    rare = set(map(str, minority))
    return pd.DataFrame({
        "class": [str(c) for c in result.classes],
        "minority": [str(c) in rare for c in result.classes],
        "n_c": result.counts,
        "centres": result.centres,
        "nc (to nearest centre)": result.nc,
        "silhouette": result.silhouette,
        "cos to centre": result.alignment,
    })  # fmt: skip
