"""Every metric against layer for chosen checkpoints, with the per-layer decay rate."""

import common
import streamlit as st

from ncviz import plots

st.title("Depth")
analysis = common.ensure_analysis()
if analysis:
    checkpoint, layer = common.selectors(analysis)
    metrics = sorted(set(analysis.table["metric"]))
    metric = st.selectbox(
        "Metric", metrics, index=metrics.index("nc1") if "nc1" in metrics else 0, key="depth_metric"
    )
    chosen = st.multiselect(
        "Checkpoints",
        analysis.checkpoints,
        default=[checkpoint],
        format_func=lambda c: common.checkpoint_label(analysis, c),
        key="depth_checkpoints",
    )
    chosen = chosen or [checkpoint]
    common.chart(plots.depth_figure(analysis.table, metric, chosen), "depth")
    labels = {name: common.checkpoint_label(analysis, name) for name in chosen}
    st.dataframe(plots.decay_table(analysis.table, metric, labels), hide_index=True)
    st.caption(
        "Per-layer factor: exp(slope of log metric against layer index); below 1 the "
        "metric shrinks geometrically with depth (He & Su 2023)."
    )
