"""Class means and classifier rows in 3-D with the ideal simplex ETF; norms."""

import common
import streamlit as st

from ncviz import plots

st.title("Geometry")
selected = common.page_result()
if selected:
    analysis, checkpoint, layer, result = selected
    left, right = st.columns([3, 2])
    with left:
        show_w = st.toggle(
            "Show classifier rows",
            value="class_weight" in result.arrays,
            disabled="class_weight" not in result.arrays,
            key="show_w",
        )
        animate = len(analysis.checkpoints) > 1 and st.toggle(
            "Animate over checkpoints", value=False, key="geometry_animate"
        )
        if animate:
            over = {
                common.checkpoint_label(analysis, c): r
                for c in analysis.checkpoints
                if (r := analysis.results.get((c, layer))) is not None
            }
            common.chart(plots.geometry_animation(over, show_weights=show_w), "geometry-play")
        else:
            common.chart(plots.geometry_figure(result, show_weights=show_w), "geometry")
        st.caption(
            "Press ▶ (animated) or scrub the checkpoint slider in the sidebar to watch the means "
            "approach the simplex ETF. Classifier rows are rescaled to the means' average norm."
        )
    with right:
        common.chart(plots.norms_figure(result), "norms")
        m = result.metrics
        cols = st.columns(2)
        for column, key in zip(
            cols * 2,
            [
                "nc2_equinorm_means",
                "nc2_equiangle_means",
                "nc2_equinorm_weights",
                "nc2_equiangle_weights",
            ],
        ):
            if key in m:
                column.metric(key, f"{m[key]:.4g}")
