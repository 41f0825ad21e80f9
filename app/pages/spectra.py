"""Singular-value spectra of the class means, the classifier and the features; rank."""

import common
import streamlit as st

from ncviz import plots
from ncviz.metrics.spectra import effective_rank, numerical_rank

st.title("Spectra")
selected = common.page_result()
if selected:
    analysis, checkpoint, layer, result = selected
    tau = st.select_slider(
        "Rank threshold τ (s_k > τ·s₁)", [1e-4, 1e-3, 1e-2, 3e-2, 1e-1, 0.3], value=1e-2, key="tau"
    )
    import torch

    sv = torch.as_tensor(result.arrays["sv_means"])
    cols = st.columns(3)
    cols[0].metric("numerical rank of M", numerical_rank(sv, tau))
    cols[1].metric("effective rank of M", f"{effective_rank(sv):.2f}")
    cols[2].metric("classes − 1", result.num_classes - 1)
    common.chart(plots.spectrum_figure(result, tau), "spectrum")
    left, right = st.columns(2)
    with left:
        common.chart(plots.depth_figure(analysis.table, "rank_means", [checkpoint]), "rank-depth")
    with right:
        fig = common.over_training(analysis, "rank_means", [layer])
        common.chart(fig, "rank-epochs")
    st.caption("Rank curves use the default τ = 0.01 of the analysis.")
