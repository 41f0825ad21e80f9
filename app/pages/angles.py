"""Heatmaps of pairwise cosines: centred class means, classifier rows, and means vs rows."""

import common
import streamlit as st

from ncviz import plots

st.title("Angles")
selected = common.page_result()
if selected:
    analysis, checkpoint, layer, result = selected
    order_by = st.segmented_control(
        "Class order", ["label", "frequency", "clustered"], default="label", key="class_order"
    )
    if "cos_means" not in result.arrays:
        st.info(f"{result.num_classes} classes: cosine matrices are kept up to 2,048 classes.")
    else:
        labels = [str(c) for c in result.classes]
        order = plots.class_order(result, order_by or "label")
        tabs = st.tabs(["Class means", "Classifier rows", "Rows vs means"])
        matrices = [
            ("cos_means", "cos(μ_c − μ_G, μ_c′ − μ_G)"),
            ("cos_weights", "cos(w_c, w_c′)"),
            ("cos_weights_means", "cos(w_c, μ_c′ − μ_G)"),
        ]
        for tab, (key, title) in zip(tabs, matrices):
            with tab:
                if key in result.arrays:
                    fig = plots.cosine_heatmap(result.arrays[key], labels, title, order)
                    common.chart(fig, f"heatmap-{key}")
                else:
                    st.info("This layer has no classifier.")
        st.caption(
            f"At the simplex ETF every off-diagonal cosine of the means equals "
            f"−1/(C−1) = {-1 / (result.num_classes - 1):.3f}."
        )
