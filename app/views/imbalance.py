"""Per-class table and minority collapse (Fang et al. 2021) over training."""

import common
import streamlit as st

from ncviz import plots
from ncviz.analysis import training_counts
from ncviz.demo import bundled_runs, bundled_runs_dir
from ncviz.jobs import default_runner
from ncviz.study import imbalance_sweep, sweep_family

SWEPT = ["minority_cos", "norm_ratio_weights"]

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
    split = analysis.split or (analysis.table["split"].iloc[0] if len(analysis.table) else "data")
    table = plots.per_class_table(result, split, training_counts(analysis))
    st.dataframe(table, hide_index=True, width="stretch")
    st.caption(
        f"n_c ({split}) counts the samples of the analysed data; a run trained on imbalanced "
        "data is usually measured on balanced data, so its training counts are shown beside "
        "them when run.json names the training data."
    )
    m = result.metrics
    if not current:
        st.caption(
            "No minority classes: every class has at least half as many samples as the "
            "largest, so there is no minority collapse to draw. Choose classes above to compare "
            "them with the rest."
        )
    cols = st.columns(3)
    for column, key in zip(cols, ["minority_cos", "minority_cos_means", "norm_ratio_weights"]):
        column.metric(key, f"{m[key]:.4g}" if key in m else "—")
    if current and len(analysis.checkpoints) > 1:
        etf = -1.0 / (result.num_classes - 1)
        references = {f"ETF −1/(C−1) = {etf:.3f}": etf, "total collapse 1": 1.0}
        left, right = st.columns(2)
        with left:
            common.chart(common.over_training(analysis, "minority_cos", [layer], references), "mc")
        with right:
            common.chart(
                common.over_training(analysis, "norm_ratio_weights", [layer], {"equal norms": 1.0}),
                "nr",
            )

    family = sweep_family(analysis.run, bundled_runs())
    if family and current:
        st.subheader("Minority collapse against the imbalance ratio")
        key = f"imbalance-sweep-{'-'.join(family)}-{layer}"
        job = default_runner().submit(
            key, "imbalance sweep",
            lambda progress: imbalance_sweep(bundled_runs_dir(), family, layer, SWEPT),
        )  # fmt: skip
        if common.job_panel(job, "Imbalance sweep", "sweep"):
            etf = -1.0 / (result.num_classes - 1)
            references = {f"ETF −1/(C−1) = {etf:.3f}": etf, "total collapse 1": 1.0}
            common.chart(plots.sweep_figure(job.result, SWEPT, "R", references), "sweep")
            st.caption(
                "One point per run of the sweep (" + ", ".join(family) + "): as the minority "
                "classes get rarer, their classifier rows collapse onto each other (Fang et al. "
                "2021, Fig. 3)."
            )
