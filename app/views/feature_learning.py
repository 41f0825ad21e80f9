"""Why collapse happens: the AGOP and the neural feature ansatz, the stages of a linear layer,
and geometric complexity (Beaglehole et al. 2024; Munn et al. 2024)."""

from dataclasses import replace

import common
import streamlit as st

from ncviz import plots
from ncviz.analysis import origin_of, source_agop
from ncviz.feature_learning import FEATURE_LEARNING
from ncviz.server.jobs import default_runner

st.title("Feature learning")
st.caption(
    "The average gradient outer product (AGOP) of the layers above a linear layer and its "
    "weights' Gram WᵀW (neural feature ansatz: WᵀW ∝ AGOP^½), and where in the layer "
    "within-class variability goes (Beaglehole, Súkeník, Mondelli & Belkin 2024, arXiv "
    "2402.13728); geometric complexity of the embedding (Munn, Dherin & Gonzalvo 2024, "
    "arXiv 2405.15706)."
)
analysis = common.ensure_analysis()
if analysis:
    checkpoint, layer = common.selectors(analysis)
    metrics = set(analysis.table["metric"])
    request = st.session_state.get("request")
    if "agop_nfa_corr" not in metrics:
        if analysis.task != "classification":
            st.info(
                f"These measures are defined for classification (class labels and a linear "
                f"classifier); this is a {analysis.task} run."
            )
        elif analysis.model is None or request is None:
            st.info(
                "These measures need checkpoints with a model and labelled data (a bundled "
                "run, or an upload with its architecture), or a run recorded with "
                '`Recorder(..., feature_learning=("agop", "gc"))`.'
            )
        elif st.button("Compute AGOP, NFA and geometric complexity", type="primary"):
            options = {**request.options, "feature_learning": list(FEATURE_LEARNING)}
            common.start_analysis(replace(request, options=options))
            st.rerun()
        else:
            st.caption(
                "On at most 1,000 samples per checkpoint; about a second per checkpoint "
                "for the digits runs."
            )
    else:
        table = analysis.table
        linear = list(dict.fromkeys(table[table["metric"] == "agop_nfa_corr"]["layer"]))
        if len(analysis.checkpoints) > 1:
            left, right = st.columns(2)
            with left:
                figure = common.over_training(analysis, "agop_nfa_corr_sqrt", linear)
                common.chart(figure, "nfa-over-training")
            with right:
                figure = common.over_training(analysis, "geometric_collapse", linear[-1:])
                common.chart(figure, "gc-over-training")
        common.chart(plots.stages_figure(table, checkpoint), "stages")
        chosen = st.selectbox(
            "Linear layer (its input)", linear, index=len(linear) - 1, key="agop_layer"
        )
        values = analysis.metrics_at(checkpoint, chosen)
        st.caption(
            f"NFA correlation at {common.checkpoint_label(analysis, checkpoint)}: "
            f"corr(WᵀW, AGOP^½) = {values.get('agop_nfa_corr_sqrt', float('nan')):.3f}, "
            f"corr(WᵀW, AGOP) = {values.get('agop_nfa_corr', float('nan')):.3f}."
        )
        if analysis.model is None:
            st.caption("The AGOP matrix itself needs the model (checkpoints with a model spec).")
        else:
            key = f"agop-{st.session_state['analysis_key']}-{checkpoint}-{chosen}"
            job = default_runner().submit(
                key,
                f"AGOP at {chosen}",
                source_agop,
                origin_of(analysis),
                checkpoint,
                chosen,
                isolated=common.isolated(analysis),
            )
            if common.job_panel(job, "AGOP", "agop"):
                common.chart(plots.agop_figure(job.result, chosen), "agop")
