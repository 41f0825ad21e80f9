"""Collapse per environment (any per-sample group) and the alignment of their prototypes."""

import common
import streamlit as st

from ncviz import plots
from ncviz.analysis import groups_against_head

GROUP_METRICS = ["accuracy", "nc1", "nc2_etf_distance", "etf_alignment", "prototype_distance"]

st.title("Environments")
selected = common.page_result()
if selected:
    analysis, checkpoint, layer, result = selected
    grouped = analysis.group_results.get((checkpoint, layer))
    if grouped is None:
        st.info(
            "This run's data have no groups. Give each sample an environment (or domain): a "
            "`groups` array in an .npz/.pt/.safetensors data file, batches `(x, y, g)` with "
            "`ncviz.Recorder(..., groups=True)`, or the bundled `builtin:colored-digits` "
            "(runs **digits-env-erm** and **digits-env-aligned** on the Source page)."
        )
    else:
        against_head = groups_against_head(analysis, checkpoint, layer)
        if against_head is not None:
            reference = st.segmented_control(
                "Common ETF",
                ["best fit to the groups", "the classifier rows W"],
                default="best fit to the groups",
                key="env_etf",
            )
            if reference == "the classifier rows W":
                grouped = against_head
        table = analysis.group_table
        shown = [m for m in GROUP_METRICS if m in set(table["metric"])]
        metric = st.selectbox("Metric per group", shown, key="env_metric")
        left, right = st.columns(2)
        with left:
            common.chart(plots.group_bars(table, checkpoint, layer, metric), "env-bars")
        with right:
            if len(analysis.checkpoints) > 1:
                common.chart(plots.group_curves(table, metric, layer), "env-curves")
        left, right = st.columns([3, 2])
        with left:
            common.chart(plots.prototype_figure(grouped), "env-prototypes")
        with right:
            common.chart(plots.distance_matrix_figure(grouped), "env-distances")
        st.dataframe(plots.group_metrics_table(table, checkpoint, layer, grouped, GROUP_METRICS))
        st.caption(
            "Each group's metrics use its own samples; a class with fewer than 2 samples in a "
            "group is left out of that group (classes_dropped). prototype_distance is the mean "
            "‖M̂_g − M̂_g′‖_F to the other groups (class means centred and scaled to unit norm); "
            "etf_alignment measures each group against one common simplex ETF ("
            + ("the classifier rows W" if grouped.etf_source == "given" else grouped.etf_source)
            + "). See docs/metrics.md, 'Groups'."
        )
        for warning in grouped.warnings:
            st.warning(warning)
