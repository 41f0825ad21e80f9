"""Per-class table and minority collapse (Fang et al. 2021) over training."""

import common
import streamlit as st

from ncviz import plots

st.title("Imbalance")
selected = common.page_result()
if selected:
    analysis, checkpoint, layer, result = selected
    labels = [str(c) for c in result.classes]
    current = [str(c) for c in result.minority_classes]
    chosen = st.multiselect("Minority classes", labels, default=current, key="minority")
    if sorted(chosen) != sorted(current) and len(chosen) >= 1:
        if st.button("Re-analyse with these minority classes", key="reanalyse_minority"):
            request = st.session_state["request"]
            options = {**request.options, "minority_classes": chosen}
            common.start_analysis(
                common.AnalysisRequest(
                    request.source,
                    request.label,
                    request.data,
                    request.model,
                    request.layers,
                    options,
                )
            )
            st.rerun()
    st.dataframe(plots.per_class_table(result), hide_index=True, width="stretch")
    m = result.metrics
    if not current:
        st.caption(
            "No minority classes: every class has at least half as many samples as the "
            "largest. Choose classes above to compare them with the rest."
        )
    cols = st.columns(3)
    for column, key in zip(cols, ["minority_cos", "minority_cos_means", "norm_ratio_weights"]):
        column.metric(key, f"{m[key]:.4g}" if key in m else "—")
    if len(analysis.checkpoints) > 1:
        onset = analysis.terminal_phase_onset()
        left, right = st.columns(2)
        with left:
            common.chart(
                plots.training_figure(analysis.table, "minority_cos", [layer], onset), "mc"
            )
        with right:
            common.chart(
                plots.training_figure(analysis.table, "norm_ratio_weights", [layer], onset), "nr"
            )
