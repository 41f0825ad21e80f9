"""Class means, classifier rows and the best-fitting simplex ETF in 3-D; norms; embeddings of the
features."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from ncviz.metrics import CollapseResult
from ncviz.metrics.buckets import most_frequent_classes
from ncviz.metrics.summaries import fitted_simplex_etf, principal_projection
from ncviz.plots.style import PALETTE, layout


def centred_means(result: CollapseResult) -> np.ndarray:
    means = result.arrays["class_means"]
    if result.options.global_mean == "sample":
        counts = result.arrays["class_counts"]
        return means - (counts[:, None] * means).sum(axis=0) / counts.sum()
    return means - means.mean(axis=0)


#: Above this many classes the class views show the most frequent ``VIEW_CLASSES`` (a chooser
#: on the page picks another number); the rest stay in the tables and the downloads.
VIEW_CLASSES = 20
#: Up to this many classes in a view every class is labelled on the plot; beyond, on hover only
#: (labels would collide).
LABELLED_CLASSES = 20


def shown_classes(
    result: CollapseResult, classes: Sequence[int] | None = None, count: int = VIEW_CLASSES
) -> np.ndarray:
    """Indices (into ``result.classes``, in class order) of the classes a class view draws:
    ``classes`` when given, else every class up to ``count``, else the ``count`` most frequent.

    >>> import numpy as np
    >>> from ncviz.metrics import collapse_result
    >>> labels = np.repeat(np.arange(4), [3, 9, 5, 7])
    >>> result = collapse_result(np.eye(4)[labels] + 0.1 * np.arange(24)[:, None], labels)
    >>> shown_classes(result, count=2).tolist(), shown_classes(result).tolist()
    ([1, 3], [0, 1, 2, 3])
    """
    if classes is not None:
        return np.asarray(classes, dtype=np.int64)
    total = len(result.classes)
    if total <= count:
        return np.arange(total)
    return np.sort(most_frequent_classes(result.arrays["class_counts"], count))


def shown_note(result: CollapseResult, shown: np.ndarray) -> str:
    """A second title line ``20 most frequent of 32,000 classes`` when a view leaves classes
    out (a long title in a narrow column is cut off, a second line is not), else ``""``."""
    if len(shown) == len(result.classes):
        return ""
    return f"<br><sup>{len(shown)} most frequent of {len(result.classes):,} classes</sup>"


def _geometry_traces(
    result: CollapseResult,
    axes: np.ndarray,
    show_weights: bool,
    show_etf: bool,
    shown: np.ndarray | None = None,
) -> tuple[list, np.ndarray]:
    """The traces of one geometry view in the projection ``axes`` (3 × d), and every plotted
    point (to fit the axes): means as spokes from μ_G in their class colour, classifier rows as
    diamonds in the same colour labelled w_c, the best-fit simplex ETF (fitted to every class) as
    a thin wireframe — of the classes ``shown`` (indices; default all)."""
    every = centred_means(result)
    shown = np.arange(len(every)) if shown is None else shown
    centred = every[shown]
    points = centred @ axes.T
    labels = [str(c) for c in np.asarray(result.classes)[shown]]
    written = len(labels) <= LABELLED_CLASSES
    colours = [PALETTE[k % len(PALETTE)] for k in range(len(labels))]
    traces, plotted = [], [np.zeros((1, 3)), points]
    for k, (point, label) in enumerate(zip(points, labels)):
        traces.append(
            go.Scatter3d(
                x=[0.0, point[0]],
                y=[0.0, point[1]],
                z=[0.0, point[2]],
                mode="lines+markers+text" if written else "lines+markers",
                text=["", label],
                textposition="top center",
                line=dict(color=colours[k], width=5),
                marker=dict(size=[0, 6], color=colours[k]),
                name="class means (from μ_G)",
                legendgroup="means",
                showlegend=k == 0,
                hovertext=f"class {label}",
            )
        )
    if show_weights and "class_weight" in result.arrays:
        weight = result.arrays["class_weight"]
        scale = np.linalg.norm(every, axis=1).mean() / np.linalg.norm(weight, axis=1).mean()
        w_points = (weight[shown] * scale) @ axes.T
        plotted.append(w_points)
        traces.append(
            go.Scatter3d(
                x=w_points[:, 0],
                y=w_points[:, 1],
                z=w_points[:, 2],
                mode="markers+text" if written else "markers",
                marker=dict(
                    symbol="diamond", size=5, color=colours, line=dict(color="black", width=1)
                ),
                text=[f"w{label}" for label in labels],
                hovertext=[f"classifier row w{label}" for label in labels],
                textposition="bottom center",
                textfont=dict(size=10),
                name="classifier rows (scaled)",
            )
        )
    if show_etf and len(every) > 2:
        etf_points = fitted_simplex_etf(every)[shown] @ axes.T
        plotted.append(etf_points)
        xs, ys, zs = [], [], []
        for i in range(len(etf_points)):
            for j in range(i + 1, len(etf_points)):
                for seq, coord in ((xs, 0), (ys, 1), (zs, 2)):
                    seq += [etf_points[i, coord], etf_points[j, coord], None]
        traces.append(
            go.Scatter3d(
                x=xs,
                y=ys,
                z=zs,
                mode="lines+markers",
                marker=dict(size=6, symbol="circle-open", color="rgb(90,90,90)"),
                line=dict(color="rgba(90,90,90,0.6)", width=1.5),
                name="ideal simplex ETF (best fit)",
            )
        )
    return traces, np.vstack(plotted)


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
        # further out than plotly's default eye (1.25): every axis title in frame
        camera=dict(eye=dict(x=1.7, y=1.7, z=1.2)),
    )


# the legend above the scene, under the title (a taller top margin): beside the scene it squeezed
# it until the PC3 axis was cut off; below, it covered the animation's play button and slider
_LEGEND_ABOVE = dict(orientation="h", yanchor="bottom", y=1.0, xanchor="left", x=0.0)
_TOP_MARGIN = 110


def _variance_share(centred: np.ndarray, dims: int = 3) -> float:
    s = np.linalg.svd(np.asarray(centred, dtype=np.float64), compute_uv=False) ** 2
    return float(s[:dims].sum() / s.sum()) if s.sum() > 0 else 1.0


def geometry_figure(
    result: CollapseResult,
    show_weights: bool = True,
    show_etf: bool = True,
    classes: Sequence[int] | None = None,
) -> go.Figure:
    """Centred class means (and classifier rows) in the top-3 principal directions of the means,
    with the best-fitting simplex ETF drawn as a wireframe; the title gives the share of the
    means' variance those 3 directions hold. W is scaled to the means' norm. ``classes``
    (indices) limits the view; by default more than ``VIEW_CLASSES`` classes show the most
    frequent ones (:func:`shown_classes`), said in the title."""
    shown = shown_classes(result, classes)
    centred = centred_means(result)[shown]
    axes = principal_projection(centred)
    traces, points = _geometry_traces(result, axes, show_weights, show_etf, shown)
    fig = go.Figure(traces)
    fig.update_layout(scene=_fitted_scene(points), height=560, legend=_LEGEND_ABOVE)
    share = _variance_share(centred)
    layout(
        fig,
        f"Class means in their top-3 principal directions ({share:.0%} of their variance)"
        + shown_note(result, shown),
    )
    fig.update_layout(margin_t=_TOP_MARGIN)
    return fig


def geometry_animation(
    results: Mapping[str, CollapseResult],
    show_weights: bool = True,
    show_etf: bool = True,
    classes: Sequence[int] | None = None,
) -> go.Figure:
    """The geometry over a run's checkpoints (name → result, in order) with a play button: all
    frames in the principal directions of the last checkpoint's means, on fixed axes; the classes
    of :func:`shown_classes` at the last checkpoint in every frame."""
    names = list(results)
    last = results[names[-1]]
    shown = shown_classes(last, classes)
    labels = np.asarray(last.classes)[shown].astype(str)
    axes = principal_projection(centred_means(last)[shown])
    frames, everything = [], []
    for name in names:
        result = results[name]
        index = {str(c): k for k, c in enumerate(result.classes)}
        present = np.array([index[c] for c in labels if c in index], dtype=np.int64)
        traces, points = _geometry_traces(result, axes, show_weights, show_etf, present)
        frames.append(go.Frame(data=traces, name=name))
        everything.append(points)
    fig = go.Figure(frames[0].data, frames=frames)
    steps = [
        dict(
            method="animate",
            label=name,
            args=[[name], dict(mode="immediate", frame=dict(duration=0, redraw=True))],
        )
        for name in names
    ]
    fig.update_layout(
        scene=_fitted_scene(np.vstack(everything)),
        height=600,
        legend=_LEGEND_ABOVE,
        updatemenus=[
            dict(
                type="buttons",
                showactive=False,
                x=0.0,
                y=0.0,
                xanchor="left",
                yanchor="top",
                buttons=[
                    dict(
                        label="▶ play",
                        method="animate",
                        args=[None, dict(frame=dict(duration=500, redraw=True), fromcurrent=True)],
                    )
                ],
            )
        ],
        sliders=[
            dict(
                active=0,
                steps=steps,
                x=0.12,
                len=0.88,
                y=0.0,
                currentvalue=dict(prefix="checkpoint: "),
            )
        ],
    )
    layout(
        fig,
        "Class means over training (projection of the last checkpoint)" + shown_note(last, shown),
    )
    # every checkpoint's points on fixed axes make a larger box: the camera a little further out
    fig.update_layout(margin_t=_TOP_MARGIN, scene_camera_eye=dict(x=1.9, y=1.9, z=1.3))
    return fig


def norms_figure(result: CollapseResult, classes: Sequence[int] | None = None) -> go.Figure:
    """Bar chart of ‖μ_c − μ_G‖ and ‖w_c‖ per class, each divided by its mean over *all*
    classes (equinorm = flat), for the classes of :func:`shown_classes`."""
    shown = shown_classes(result, classes)
    labels = [str(c) for c in np.asarray(result.classes)[shown]]
    norms = result.arrays["mean_norms"]
    fig = go.Figure(go.Bar(x=labels, y=norms[shown] / norms.mean(), name="class means"))
    if "weight_norms" in result.arrays:
        w = result.arrays["weight_norms"]
        fig.add_trace(go.Bar(x=labels, y=w[shown] / w.mean(), name="classifier rows"))
    fig.add_hline(y=1.0, line_dash="dot", line_color="grey")
    fig.update_xaxes(type="category")
    return layout(
        fig,
        "Norm ÷ mean norm (equinorm: all at 1)" + shown_note(result, shown),
        barmode="group",
        xaxis_title="class",
        yaxis_title="norm / mean norm",
    )


DENSITY_THRESHOLD = 50_000  # points; beyond this an embedding is drawn as a density image


def _most_common(labels: np.ndarray, classes: Sequence[str], count: int) -> list[int]:
    """Indices into ``classes`` of every class up to ``count`` of them, else of the ``count``
    with most points among ``labels`` (ties: the earlier class), in class order."""
    if len(classes) <= count:
        return list(range(len(classes)))
    names, frequency = np.unique(labels, return_counts=True)
    points = dict(zip(names.tolist(), frequency.tolist()))
    counts = [points.get(name, 0) for name in classes]
    return sorted(most_frequent_classes(counts, count).tolist())


def embedding_figure(
    coords: np.ndarray,
    labels: Sequence[str],
    title: str,
    centres: np.ndarray | None = None,
    values: np.ndarray | None = None,
    value_name: str = "target",
    axes: tuple[str, str] = ("dimension 1", "dimension 2"),
) -> go.Figure:
    """2-D embedding of samples coloured by class, class centres as large crosses — or, with
    ``values`` (a continuous target), on a colour scale. Beyond ``DENSITY_THRESHOLD`` points the
    samples are drawn as a 2-D density image instead. ``axes``: the axis titles (``("PC1",
    "PC2")``, ``("UMAP 1", "UMAP 2")``)."""
    fig = go.Figure()
    fig.update_xaxes(title=axes[0])
    fig.update_yaxes(title=axes[1])
    if values is not None and len(coords) <= DENSITY_THRESHOLD:
        fig.add_trace(
            go.Scattergl(
                x=coords[:, 0],
                y=coords[:, 1],
                mode="markers",
                name=value_name,
                marker=dict(
                    size=4,
                    opacity=0.8,
                    color=np.asarray(values),
                    colorscale="Viridis",
                    colorbar=dict(title=value_name),
                ),
            )
        )
        return layout(fig, title, height=560)
    labels = np.asarray([str(x) for x in labels])
    classes = sorted(set(labels), key=lambda s: (len(s), s))  # the order of ``centres``' rows
    coloured = _most_common(labels, classes, VIEW_CLASSES)
    if len(coloured) < len(classes):
        note = f"colours: the {len(coloured)} most frequent of {len(classes):,} classes"
        title += f"<br><sup>{note}</sup>"
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
        rest = ~np.isin(labels, [classes[k] for k in coloured])
        if rest.any():  # every other class in one grey trace, its name on hover
            fig.add_trace(
                go.Scattergl(
                    x=coords[rest, 0],
                    y=coords[rest, 1],
                    mode="markers",
                    name=f"{len(classes) - len(coloured):,} other classes",
                    hovertext=labels[rest],
                    marker=dict(size=4, opacity=0.5, color="rgb(170,170,170)"),
                )
            )
        for k in coloured:
            mask = labels == classes[k]
            fig.add_trace(
                go.Scattergl(
                    x=coords[mask, 0],
                    y=coords[mask, 1],
                    mode="markers",
                    name=classes[k],
                    marker=dict(size=4, opacity=0.7, color=PALETTE[k % len(PALETTE)]),
                )
            )
    if centres is not None and len(centres):
        fig.add_trace(
            go.Scatter(
                x=centres[coloured, 0],
                y=centres[coloured, 1],
                mode="markers+text",
                text=[classes[k] for k in coloured],
                textposition="top center",
                name="class means",
                marker=dict(symbol="x", size=12, color="crimson"),
            )
        )
    return layout(fig, title, height=560)
