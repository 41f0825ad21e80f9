"""Class means and classifier rows in 3-D with the ideal simplex ETF; norms."""

import common
import streamlit as st

from ncviz import plots

st.title("Geometry")
selected = common.page_result()
if selected:
    analysis, checkpoint, layer, result = selected
    shown = None  # every class, up to plots.VIEW_CLASSES
    if result.num_classes > plots.VIEW_CLASSES:
        most = min(100, result.num_classes)
        count = st.slider(
            f"Classes shown (most frequent of {result.num_classes:,})",
            2,
            most,
            plots.VIEW_CLASSES,
            key="geometry_classes",
            help="Every class enters the metrics and the fitted ETF; the views draw the most "
            f"frequent ones. Names are written on the plot up to {plots.LABELLED_CLASSES} "
            "classes, on hover beyond.",
        )
        shown = plots.shown_classes(result, count=count)
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
            common.chart(
                plots.geometry_animation(over, show_weights=show_w, classes=shown), "geometry-play"
            )
        else:
            common.chart(
                plots.geometry_figure(result, show_weights=show_w, classes=shown), "geometry"
            )
        st.caption(
            "Press ▶ (animated) or scrub the checkpoint slider in the sidebar to watch the means "
            "approach the simplex ETF. Classifier rows are rescaled to the means' average norm."
        )
    with right:
        common.chart(plots.norms_figure(result, classes=shown), "norms")
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
