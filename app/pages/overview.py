"""Headline metrics of the selected checkpoint and layer, each beside its chance baseline."""

import common
import streamlit as st

from ncviz.metrics import METRICS, chance_baselines

HEADLINE = [
    "nc1",
    "nc1_trace_ratio",
    "cdnv",
    "nc2_etf_distance",
    "nc2_equiangle_means",
    "nc2_equinorm_means",
    "nc3",
    "nc3_gram",
    "nc4",
    "accuracy",
    "rank_means",
    "gnc2_log_var",
]

st.title("Overview")
selected = common.page_result()
if selected:
    analysis, checkpoint, layer, result = selected
    st.caption(
        f"{analysis.run} · {common.checkpoint_label(analysis, checkpoint)} · layer `{layer}` · "
        f"C = {result.num_classes}, d = {result.arrays['class_means'].shape[1]}, "
        f"N = {int(result.arrays['class_counts'].sum()):,}"
    )
    for warning in result.warnings:
        st.warning(warning)
    chance = chance_baselines(result.num_classes, result.arrays["class_means"].shape[1])
    keys = [k for k in HEADLINE if k in result.metrics]
    for row in range(0, len(keys), 4):
        for column, key in zip(st.columns(4), keys[row : row + 4]):
            info = METRICS[key]
            value = result.metrics[key]
            help_text = f"{info.meaning}. Source: {info.source}."
            if info.collapsed is not None:
                help_text += f" Exact collapse: {info.collapsed:g}."
            column.metric(f"{info.label} · {key}", f"{value:.4g}", help=help_text, border=True)
            if key in chance:
                column.caption(f"chance {chance[key]:.3g} · {info.meaning}")
            else:
                column.caption(info.meaning)
    onset = analysis.terminal_phase_onset()
    if onset is not None:
        st.caption(f"Zero training error (terminal phase) from epoch {onset}.")
