"""Two checkpoints, or two runs, side by side: metrics, geometry and curves over training."""

import common
import streamlit as st

from ncviz import plots
from ncviz.demos.catalog import bundled_runs, comparison_partner
from ncviz.metrics import CollapseResult

# shown first when comparing runs (NC1–NC3, minority collapse and what it costs)
HEADLINE = [
    "nc1",
    "nc2_etf_distance",
    "nc3",
    "nc4",
    "minority_cos",
    "accuracy_minority",
    "accuracy_majority",
    "accuracy",
    "nrc1",
    "nrc2",
    "nrc3",
]

st.title("Compare")
analysis = common.ensure_analysis()
if analysis:
    checkpoint, layer = common.selectors(analysis)
    mode = st.segmented_control(
        "Compare", ["Two checkpoints", "Another run"], default="Two checkpoints", key="compare_mode"
    )
    if mode != "Another run":
        other_checkpoint = st.selectbox(
            "Against checkpoint",
            analysis.checkpoints,
            index=0,
            key="compare_checkpoint",
            format_func=lambda c: common.checkpoint_label(analysis, c),
        )
        mine = analysis.metrics_at(checkpoint, layer)
        theirs = analysis.metrics_at(other_checkpoint, layer)
        a_label = common.checkpoint_label(analysis, checkpoint)
        b_label = common.checkpoint_label(analysis, other_checkpoint)
        st.dataframe(
            plots.side_by_side(mine, theirs, (a_label, b_label)), hide_index=True, width="stretch"
        )
        first = analysis.results[(checkpoint, layer)]
        second = analysis.results[(other_checkpoint, layer)]
        if isinstance(first, CollapseResult) and isinstance(second, CollapseResult):
            tabs = st.tabs([a_label, b_label if b_label != a_label else f"{b_label} (again)"])
            for index, (tab, result) in enumerate(zip(tabs, (first, second))):
                with tab:  # one geometry at full width: readable, nothing clipped
                    common.chart(plots.geometry_figure(result), f"cmp-geo-{index}")
        st.stop()
    # the run's own partner (a DEQ's explicit twin, ERM's aligned model), this session's other
    # analyses (uploads, recorded runs, bundled runs), then the bundled runs — of the same kind
    # first (a regression run is compared with a regression run)
    current = st.session_state.get("job_key")
    choices: dict[str, str] = {}
    partner = comparison_partner(analysis.run)
    if partner in bundled_runs():
        choices[common.bundled_request(partner).key] = partner
    for key, r in reversed(st.session_state.get("history", {}).items()):
        if key != current:
            choices.setdefault(key, f"{r.label} (this session)")
    regression = "regression" in analysis.run
    bundled = [r for r in bundled_runs() if r != analysis.run]
    bundled.sort(key=lambda r: ("regression" in r) != regression)
    for name in bundled:
        choices.setdefault(common.bundled_request(name).key, name)
    picked = st.selectbox(
        "Compare with", list(choices), key="compare_with", format_func=choices.get
    )
    history = st.session_state.get("history", {})
    request = history.get(picked) or common.bundled_request(choices[picked])
    other_name = request.label
    job = common.submit_analysis(request, other_name)
    if not common.job_panel(job, f"Analysis of {other_name}", "compare"):
        st.stop()
    other = job.result
    shared = [x for x in analysis.layers if x in other.layers]
    if not shared:
        st.warning("The two runs have no layer in common.")
        st.stop()
    at_layer = layer if layer in shared else shared[-1]
    mine = analysis.metrics_at(checkpoint, at_layer)
    theirs = other.metrics_at(other.checkpoints[-1], at_layer)
    frame = plots.side_by_side(mine, theirs, (analysis.run, other.run), HEADLINE)
    keys = list(frame["metric"])
    if not keys:
        st.info(f"{analysis.run} and {other.run} share no metric (different tasks).")
        st.stop()
    st.caption(
        f"Layer `{at_layer}`: {analysis.run} at "
        f"{common.checkpoint_label(analysis, checkpoint)} vs {other.run} at its last "
        "checkpoint."
    )
    st.dataframe(frame, hide_index=True, width="stretch")
    pair = [
        (analysis.run, analysis.results.get((checkpoint, at_layer))),
        (other.run, other.results.get((other.checkpoints[-1], at_layer))),
    ]
    if all(isinstance(r, CollapseResult) for _, r in pair):
        grams = [k for k in ("cos_weights", "cos_means") if all(k in r.arrays for _, r in pair)]
        if grams:
            gram = st.segmented_control(
                "Gram matrices side by side",
                grams,
                default=grams[0],
                key="compare_gram",
                format_func={"cos_weights": "classifier rows W", "cos_means": "class means"}.get,
            )
            columns = st.columns(2)
            for index, (column, (name, result)) in enumerate(zip(columns, pair)):
                with column:
                    labels = [str(c) for c in result.classes]
                    figure = plots.cosine_heatmap(result.arrays[gram or grams[0]], labels, name)
                    common.chart(figure, f"cmp-gram-{index}")
    metric = st.selectbox(
        "Metric over training",
        keys,
        index=keys.index("nc1") if "nc1" in keys else 0,
        key="compare_metric",
    )
    figure = plots.compare_figure(
        {analysis.run: analysis.table, other.run: other.table}, metric, at_layer
    )
    common.chart(figure, "compare")
