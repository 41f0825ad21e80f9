"""Singular-value spectra of the class means, the classifier and the features — one layer, or
every layer overlaid (the low-rank bias across depth) — and the rank at a chosen τ."""

import common
import streamlit as st

from ncviz import plots
from ncviz.analysis import ranks_at
from ncviz.metrics.spectra import MEANS_MATRIX, collapse_rank, means_spectrum, rank_metric, ranks

st.title("Spectra")
selected = common.page_result()
if selected:
    analysis, checkpoint, layer, result = selected
    centring = common.means_centring()
    left, right = st.columns([2, 1])
    tau = left.select_slider(
        "Rank threshold τ (s_k > τ·s₁)", [1e-4, 1e-3, 1e-2, 3e-2, 1e-1, 0.3], value=1e-2, key="tau"
    )
    top = (
        int(
            right.number_input(
                "Show the top k singular values (0 = all)", 0, 100_000, 0, key="spectrum_top"
            )
        )
        or None
    )
    numerical, effective = ranks(means_spectrum(result.arrays, centring), tau)
    cols = st.columns(3)
    cols[0].metric(f"numerical rank of {MEANS_MATRIX[centring]}", numerical)
    cols[1].metric(f"effective rank of {MEANS_MATRIX[centring]}", f"{effective:.2f}")
    # what full collapse reaches: a simplex ETF spans C − 1 dimensions once centred
    full = "classes − 1" if centring == "centred" else "classes"
    cols[2].metric(full, collapse_rank(result.num_classes, centring))
    one, across = st.tabs([f"Layer {layer}", "All layers"])
    with one:
        common.chart(plots.spectrum_figure(result, tau, top, centring), "spectrum")
    with across:
        which = (
            st.segmented_control(
                "Spectrum",
                list(plots.SPECTRA),
                default="sv_means",
                key="spectrum_kind",
                format_func=lambda key: plots.spectrum_name(key, centring),
            )
            or "sv_means"
        )
        per_layer = analysis.layer_results(checkpoint)
        figure = plots.layers_spectrum_figure(per_layer, which, tau, top, centring)
        common.chart(figure, "spectra-layers")
    ranks = ranks_at(analysis, tau, centring)
    metric = rank_metric(centring)
    axis = f"numerical rank of {MEANS_MATRIX[centring]} (τ = {tau:g})"
    left, right = st.columns(2)
    with left:
        fig = plots.depth_figure(ranks, metric, [checkpoint])
        common.chart(fig.update_yaxes(title=axis), "rank-depth")
    with right:
        fig = common.over_training(analysis, metric, [layer], table=ranks)
        common.chart(fig.update_yaxes(title=axis), "rank-epochs")
