"""Metrics over training epochs, several layers overlaid, the terminal phase marked."""

import common
import streamlit as st

from ncviz import plots

st.title("Training")
analysis = common.ensure_analysis()
if analysis:
    checkpoint, layer = common.selectors(analysis)
    if len(analysis.checkpoints) < 2:
        st.info("This source has a single checkpoint; pick a run with several to see training.")
    else:
        metrics = sorted(set(analysis.table["metric"]))
        default = [
            m for m in ("nc1", "nc2_etf_distance", "nc3", "nc4", "nrc1", "nrc2") if m in metrics
        ]
        chosen = st.multiselect("Metrics", metrics, default=default[:4], key="train_metrics")
        layers = st.multiselect("Layers", analysis.layers, default=[layer], key="train_layers")
        if analysis.log:
            common.chart(plots.accuracy_figure(analysis.log), "accuracy")
        columns = st.columns(2)
        for index, metric in enumerate(chosen):
            with columns[index % 2]:
                fig = common.over_training(analysis, metric, layers or [layer])
                common.chart(fig, f"train-{metric}")
