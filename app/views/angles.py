"""Heatmaps of pairwise cosines: centred class means, classifier rows, and means vs rows —
coloured around the simplex-ETF value, as deviations from it, and as histograms."""

import common
import streamlit as st

from ncviz import plots

MATRICES = [
    ("cos_means", "Class means", "cos(μ_c − μ_G, μ_c′ − μ_G)", True),
    ("cos_weights", "Classifier rows", "cos(w_c, w_c′)", True),
    ("cos_weights_means", "Rows vs means", "cos(w_c, μ_c′ − μ_G)", False),
]

st.title("Angles")
selected = common.page_result()
if selected:
    analysis, checkpoint, layer, result = selected
    left, right = st.columns(2)
    order_by = left.segmented_control(
        "Class order", ["label", "frequency", "clustered"], default="label", key="class_order"
    )
    view = right.segmented_control(
        "Show", ["cosine", "deviation from ETF"], default="cosine", key="angle_view"
    )
    if "cos_means" not in result.arrays:
        st.info(f"{result.num_classes} classes: cosine matrices are kept up to 2,048 classes.")
    else:
        labels = [str(c) for c in result.classes]
        order = plots.class_order(result, order_by or "label")
        tabs = st.tabs([name for _, name, _, _ in MATRICES])
        for tab, (key, name, title, symmetric) in zip(tabs, MATRICES):
            with tab:
                if key not in result.arrays:
                    st.info("This layer has no classifier.")
                    continue
                matrix = result.arrays[key]
                deviation = view == "deviation from ETF"
                heading = f"{title} − (−1/(C−1))" if deviation else title
                fig = plots.cosine_heatmap(matrix, labels, heading, order, deviation=deviation)
                common.chart(fig, f"heatmap-{key}")
                st.download_button(  # every value, made on click (the view may be an image)
                    f"{name}: the full {len(labels):,} × {len(labels):,} matrix (CSV)",
                    lambda matrix=matrix: plots.matrix_csv(matrix, labels),
                    f"{analysis.run}-{key}.csv",
                    "text/csv",
                    key=f"dl_{key}",
                )
                histogram = plots.cosine_histogram(
                    matrix, f"{name}: every pair's cosine", pairs_only=symmetric
                )
                common.chart(histogram, f"histogram-{key}")
        st.caption(
            f"At the simplex ETF every off-diagonal cosine of the means equals "
            f"−1/(C−1) = {-1 / (result.num_classes - 1):.3f}: the colour scale is white there, "
            "blue below and red above."
        )
