"""Per-class table and minority collapse (Fang et al. 2021) over training."""

from pathlib import Path

import common
import streamlit as st

from ncviz import plots
from ncviz.analysis import origin_of, source_multicentre
from ncviz.demos.catalog import bundled_runs_dir, sweep_family
from ncviz.server.jobs import default_runner
from ncviz.server.requests import training_counts_of
from ncviz.study import imbalance_sweep

SWEPT = ["minority_cos", "norm_ratio_weights"]

st.title("Imbalance")


def multicentre_tab(analysis, checkpoint: str, layer: str, result) -> None:
    """Per-class k-means (or the run's own fixed targets): collapse to multiple centres."""
    given = origin_of(analysis).has_given_centres() and layer.endswith(":input")
    left, middle, right = st.columns(3)
    cap = left.slider("Most centres per class (k-means)", 1, 10, 5, key="mc_cap")
    use_given = middle.toggle(
        "Use the run's fixed centres", value=given, disabled=not given, key="mc_given"
    )
    key = f"multicentre-{st.session_state.get('job_key')}-{checkpoint}-{layer}-{cap}-{use_given}"
    job = default_runner().get(key)
    if job is None and not right.button("Find the centres", key="mc_run"):
        st.caption(
            "Per class, k-means on the features with k ≤ the cap chosen by silhouette (k = 1 "
            "when no k reaches 0.5), or the fixed targets the run was trained with; then each "
            "class's collapse to the nearest of its centres (NCMC). docs/metrics.md, 'Multiple "
            "centres'."
        )
        return
    job = default_runner().submit(
        key,
        "multi-centre",
        source_multicentre,
        origin_of(analysis),
        checkpoint,
        layer,
        split=analysis.split,
        max_centres=cap,
        use_given=use_given,
        isolated=common.isolated(analysis),
    )
    if not common.job_panel(job, "Multi-centre analysis", "multicentre"):
        return
    found = job.result
    cols = st.columns(4)
    for column, (name, value) in zip(cols, found.metrics.items()):
        column.metric(name, f"{value:.4g}")
    minority = [str(c) for c in result.minority_classes]
    common.chart(plots.multicentre_figure(found, minority), "multicentre")
    st.dataframe(plots.multicentre_table(found, minority), hide_index=True, width="stretch")


def minority_tab(analysis, checkpoint: str, layer: str, result) -> None:
    """The per-class table and the minority cosine and norm ratio over training."""
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
    job = default_runner().submit(
        f"training-counts-{st.session_state.get('job_key')}",
        "training counts",
        training_counts_of,
        origin_of(analysis),
        isolated=common.isolated(analysis),
    )
    # its one-line error (a refused bomb, an unreadable file) above a table without the counts
    counted = common.job_panel(job, "Reading the training data's counts", "training-counts")
    if not counted and not job.finished:
        return
    table = plots.per_class_table(result, split, job.result if counted else None)
    st.dataframe(table, hide_index=True, width="stretch")
    st.caption(
        f"n_c (analysed: {split}) counts the samples of the analysed data; a run trained on "
        f"imbalanced data is usually measured on balanced data, so the counts it was trained on "
        f"are shown beside them as “{plots.TRAINED_ON}” when run.json names its training data."
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

    bundled = common.is_bundled(analysis.source)
    family = sweep_family(Path(analysis.source).name) if bundled else []
    if family and current:
        st.subheader("Minority collapse against the imbalance ratio")
        key = f"imbalance-sweep-{'-'.join(family)}-{layer}"
        job = default_runner().submit(
            key,
            "imbalance sweep",
            lambda progress: imbalance_sweep(bundled_runs_dir(), family, layer, SWEPT),
            isolated=False,  # the bundled sweep: our own runs
        )
        if common.job_panel(job, "Imbalance sweep", "sweep"):
            etf = -1.0 / (result.num_classes - 1)
            references = {f"ETF −1/(C−1) = {etf:.3f}": etf, "total collapse 1": 1.0}
            common.chart(plots.sweep_figure(job.result, SWEPT, "R", references), "sweep")
            st.caption(
                "One point per run of the sweep (" + ", ".join(family) + "): as the minority "
                "classes get rarer, their classifier rows collapse onto each other (Fang et al. "
                "2021, Fig. 3)."
            )


selected = common.page_result()
if selected:
    collapse, centres = st.tabs(["Minority collapse", "Multi-centre"])
    with collapse:
        minority_tab(*selected)
    with centres:
        multicentre_tab(*selected)
