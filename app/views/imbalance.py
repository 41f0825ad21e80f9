"""Per-class table and minority collapse (Fang et al. 2021) over training."""

from pathlib import Path

import common
import streamlit as st

from ncviz import plots
from ncviz.analysis import origin_of, source_multicentre, source_ncmc
from ncviz.demos.catalog import bundled_runs_dir, sweep_family
from ncviz.server.jobs import default_runner
from ncviz.server.requests import training_counts_of
from ncviz.study import imbalance_sweep

SWEPT = ["minority_cos", "norm_ratio_weights"]

st.title("Imbalance")


def multicentre_tab(analysis, checkpoint: str, layer: str, result) -> None:
    """NCMC's collapse to each class's centre-mean (runs trained to fixed centres), and the
    k-means sub-cluster view (any run) — two different questions, measured on request."""
    source = origin_of(analysis)
    given = source.has_given_centres() and layer.endswith(":input")
    minority = [str(c) for c in result.minority_classes]
    base = f"{st.session_state.get('job_key')}-{checkpoint}-{layer}"
    if given:
        st.markdown("**NCMC: collapse to each class's centre-mean**")
        notes = getattr(source, "run_file", {}).get("notes", "")
        st.caption(
            "The run was trained towards fixed centres w_kj per class; under NCMC a class's "
            "features collapse to the *mean* of its centres. Per class: the mean of "
            "‖h/‖h‖ − ĉ_k‖² (0 = every feature points at its centre-mean; up to 4). "
            "docs/metrics.md, 'Multiple centres'. " + notes
        )
        job = default_runner().submit(
            f"ncmc-{base}",
            "NCMC",
            source_ncmc,
            source,
            checkpoint,
            layer,
            split=analysis.split,
            isolated=common.isolated(analysis),
        )
        if common.job_panel(job, "NCMC", "ncmc"):
            ncmc = job.result
            for column, (name, value) in zip(st.columns(4), ncmc.metrics.items()):
                column.metric(name, f"{value:.4g}")
            titles = ("per-class collapse to the centre-mean", "centres f_k against class size")
            label = "(1/n_k)Σ‖h/‖h‖ − ĉ_k‖²"
            common.chart(plots.multicentre_figure(ncmc, minority, titles, label), "ncmc")
            st.dataframe(plots.ncmc_table(ncmc, minority), hide_index=True, width="stretch")
    st.markdown("**Sub-clusters (k-means) — not NCMC**")
    left, middle, right = st.columns(3)
    cap = left.slider("Most sub-clusters per class (k-means)", 1, 10, 5, key="mc_cap")
    use_given = middle.toggle(
        "Nearest of the run's fixed centres", value=False, disabled=not given, key="mc_given"
    )
    key = f"multicentre-{base}-{cap}-{use_given}"
    job = default_runner().get(key)
    if job is None and not right.button("Find the sub-clusters", key="mc_run"):
        st.caption(
            "Does each class sit on a few points, whichever they are? Per class, k-means on the "
            "features with k ≤ the cap chosen by silhouette (k = 1 when no k reaches 0.5), or "
            "the nearest of the run's fixed centres; then each class's collapse to the nearest "
            "of them. Features spread over separate points count as collapsed here — that is "
            "not NCMC, whose collapse is to the mean of the centres (above)."
        )
        return
    job = default_runner().submit(
        key,
        "sub-clusters",
        source_multicentre,
        source,
        checkpoint,
        layer,
        split=analysis.split,
        max_centres=cap,
        use_given=use_given,
        isolated=common.isolated(analysis),
    )
    if not common.job_panel(job, "Sub-cluster analysis", "multicentre"):
        return
    found = job.result
    for column, (name, value) in zip(st.columns(4), found.metrics.items()):
        column.metric(name, f"{value:.4g}")
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
    collapse, centres = st.tabs(["Minority collapse", "NCMC · sub-clusters"])
    with collapse:
        minority_tab(*selected)
    with centres:
        multicentre_tab(*selected)
