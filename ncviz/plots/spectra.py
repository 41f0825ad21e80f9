"""Singular-value spectra of class means, classifier and features, one layer or all overlaid, and
ranks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from ncviz.metrics import CollapseResult
from ncviz.metrics.spectra import MEANS_MATRIX, check_centring, means_spectrum
from ncviz.plots.style import PALETTE, layout
from ncviz.plots.training import history_figure

SPECTRUM_FLOOR = 1e-13  # s_k/s_1 below this is rounding noise of float64 sums, not signal


SPECTRA = {
    "sv_means": "class means M",
    "sv_weights": "classifier W",
    "sv_features": "features (cov.)",
}


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
    fig.add_hrect(
        y0=SPECTRUM_FLOOR / 3,
        y1=SPECTRUM_FLOOR,
        fillcolor="lightgrey",
        opacity=0.5,
        line_width=0,
        annotation_text="float64 precision: numerically zero",
        annotation_position="bottom left",
    )
    fig.add_hline(
        y=tau,
        line_dash="dash",
        line_color="crimson",
        annotation_text=f"τ = {tau:g}",
        annotation_position="bottom right",
    )
    fig.update_yaxes(type="log", title="s_k / s_1")
    fig.update_xaxes(title="k")
    return layout(fig, title)


def spectrum_figure(
    result: CollapseResult, tau: float = 1e-2, top: int | None = None, centring: str = "centred"
) -> go.Figure:
    """Normalised singular values (s_k / s_1, log scale) of the class means (``centring``: M =
    [μ_c − μ_G] or the uncentred [μ_c]), of W and of the features (all of them, or the ``top``
    largest), with the rank threshold τ."""
    spectra = {
        spectrum_name(key, centring): _spectrum(result, key, centring)[:top]
        for key in SPECTRA
        if key in result.arrays and len(result.arrays[key])
    }
    shown = "" if top is None else f" (top {top})"
    return _spectra_figure(spectra, tau, f"Singular-value spectra{shown}")


def layers_spectrum_figure(
    results: Mapping[str, CollapseResult],
    key: str = "sv_means",
    tau: float = 1e-2,
    top: int | None = None,
    centring: str = "centred",
) -> go.Figure:
    """One spectrum (``key``: sv_means, sv_weights or sv_features) for every layer, overlaid —
    the low-rank bias across depth; the class means ``centring`` as on the rest of the page."""
    spectra = {
        layer: _spectrum(r, key, centring)[:top]
        for layer, r in results.items()
        if key in r.arrays and len(r.arrays[key])
    }
    return _spectra_figure(spectra, tau, f"{spectrum_name(key, centring)} across layers")


def spectrum_name(key: str, centring: str = "centred") -> str:
    """The legend name of a spectrum, the class means' convention named.

    >>> spectrum_name("sv_means", "uncentred"), spectrum_name("sv_weights")
    ('class means [μ_c] (uncentred)', 'classifier W')
    """
    if key == "sv_means":
        return f"class means {MEANS_MATRIX[check_centring(centring)]}"
    return SPECTRA.get(key, key)


def _spectrum(result: CollapseResult, key: str, centring: str) -> np.ndarray:
    if key == "sv_means":
        return means_spectrum(result.arrays, centring)
    return np.asarray(result.arrays[key])


def ranks_figure(
    steps: Sequence[int],
    ranks: Sequence[Sequence[int]],
    prefix: str,
    first_layer: int = 1,
    centring: str = "uncentred",
) -> go.Figure:
    """Numerical rank of each layer's class-mean matrix (``centring`` named in the title)
    against training step."""
    per_layer = np.asarray(ranks).T if len(ranks) else np.zeros((0, 0))
    series = {f"{prefix}{first_layer + i}": row for i, row in enumerate(per_layer)}
    title = f"Rank of the class means ({prefix}l, {centring})"
    fig = history_figure(steps, series, title, log_y=False)
    fig.update_yaxes(title="numerical rank (τ = 0.01)", dtick=1)
    return fig


def layer_spectra_figure(
    matrices: Sequence[np.ndarray], prefix: str = "H", tau: float = 1e-2, centring: str = ""
) -> go.Figure:
    """Normalised singular values of each layer's class-mean matrix (log scale); ``centring``
    names the matrices' convention in the title."""
    spectra = {
        f"{prefix}{k + 1}": np.linalg.svd(np.asarray(m), compute_uv=False)
        for k, m in enumerate(matrices)
    }
    named = f" ({centring})" if centring else ""
    return _spectra_figure(spectra, tau, f"Spectra of the class-mean matrices{named}")
