"""Metrics over training epochs, several layers overlaid, the terminal phase marked."""

import common
import streamlit as st

from ncviz import plots


def overlay_runs(analysis, metrics: list[str], layer: str, scale: str) -> None:
    """TensorBoard's habit: this run's curve of one metric (the first of ``metrics`` unless
    chosen) beside other runs' (a sweep)."""
    this = common.link_name(st.session_state.get("request")) or analysis.run
    others = [r for r in common.server_runs() if r != this]
    if not others:
        return
    st.subheader("Several runs")
    left, right = st.columns([3, 1])
    with left:
        picked = common.pick_runs(
            "Overlay runs",
            others,
            "Runs of the log folder (or the bundled runs) drawn beside this one; the choice is "
            "in the address bar.",
        )
    if not picked:
        st.caption("Pick runs to overlay one metric's curves over training (legend = run).")
        return
    with right:
        names = sorted(set(analysis.table["metric"]))
        first = metrics[0] if metrics and metrics[0] in names else names[0]
        metric = st.selectbox("Metric", names, index=names.index(first), key="train_runs_metric")
    tables = {this: analysis.table}
    analyses, _ = common.analyses_of(picked)  # the others drawn as they finish
    for name, other in analyses.items():
        if len(other.splits) > 1:  # the split shown here where the run has it
            other = other.for_split(
                analysis.split if analysis.split in other.splits else other.splits[0]
            )
        tables[name] = other.table
    common.chart(plots.compare_figure(tables, metric, layer, scale), "train-runs")


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
        chosen_scale = st.segmented_control(
            "Epoch axis",
            list(plots.EPOCH_SCALES),
            default="auto",
            key="train_scale",
            help="auto: a log axis from 50 epochs on (the terminal phase), linear below.",
        )
        scale = chosen_scale or "auto"
        if analysis.log:
            common.chart(plots.accuracy_figure(analysis.log, scale), "accuracy")
        overlay = analysis.task == "classification" and st.toggle(
            "Overlay the test split",
            value=False,
            key="train_overlay_test",
            help="Each metric on the training and the held-out data (Hui et al. 2022).",
        )
        tables = common.split_tables(analysis) if overlay else None
        columns = st.columns(2)
        for index, metric in enumerate(chosen):
            with columns[index % 2]:
                if tables is not None:
                    fig = plots.compare_figure(tables, metric, layer, scale)
                else:
                    fig = common.over_training(analysis, metric, layers or [layer], scale=scale)
                common.chart(fig, f"train-{metric}")
        overlay_runs(analysis, chosen or default[:1], layer, scale)
