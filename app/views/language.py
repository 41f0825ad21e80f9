"""Next-token collapse of a language model: frequency buckets and token heatmaps."""

import common
import pandas as pd
import streamlit as st

from ncviz import plots
from ncviz.metrics.buckets import BUCKET_EDGES, frequency_buckets, top_class_cosines

CURVES = ["nc4", "cdnv", "gnc2_log_var", "unc3_var"]

st.title("Language")
st.caption(
    "Next tokens as classes: the features are the hidden states the LM head reads, at every "
    "position with a real next token (Wu & Papyan 2024, *Linguistic Collapse*, arXiv 2405.17767)."
)
selected = common.page_result()
if selected:
    analysis, checkpoint, layer, result = selected
    if analysis.task != "language":
        st.info(
            f"**{analysis.run}** is a {analysis.task} run. Pick the bundled **markov-lm** run on "
            "the Source page, or analyse a causal LM with `ncviz analyze RUN --language`."
        )
        if analysis.task != "classification" or not st.toggle(
            "Show the token views for its classes anyway",
            key="language_anyway",
            help="Frequency buckets and class heatmaps read any classification run's classes.",
        ):
            st.stop()
    metrics = analysis.metrics_at(checkpoint, layer)
    if "classes_kept" in metrics:
        st.caption(
            f"{int(metrics['classes_kept']):,} token classes kept, "
            f"{int(metrics.get('classes_dropped', 0)):,} dropped (fewer than min_count "
            f"occurrences), {int(metrics.get('samples_dropped', 0)):,} tokens dropped."
        )

    if len(analysis.checkpoints) > 1:
        st.subheader("Over training")
        st.caption(
            "nc4 is the share of tokens where the nearest class mean and the LM head disagree "
            "(NC4 agreement = 1 − nc4); cdnv, gnc2_log_var and unc3_var fall as tokens collapse."
        )
        shown = [m for m in CURVES if m in set(analysis.table["metric"])]
        columns = st.columns(2)
        for index, metric in enumerate(shown):
            with columns[index % 2]:
                figure = common.over_training(analysis, metric, analysis.layers)
                common.chart(figure, f"language-{metric}")

    st.subheader("Frequency buckets")
    edges_text = st.text_input(
        "Bucket edges (frequency ranks)", ", ".join(map(str, BUCKET_EDGES)), key="bucket_edges"
    )
    try:
        edges = sorted({int(e) for e in edges_text.replace(",", " ").split()})
    except ValueError:
        st.error("Bucket edges must be whole numbers, e.g. 100, 1000, 10000.")
        edges = list(BUCKET_EDGES)
    buckets = pd.DataFrame(frequency_buckets(result, edges))
    metric = st.selectbox(
        "Metric", [m for m in buckets.columns if m not in ("bucket", "classes", "samples", "share")]
    )
    common.chart(plots.buckets_figure(buckets, metric), "language-buckets")
    st.dataframe(buckets, hide_index=True, width="stretch")

    st.subheader("Most frequent tokens")
    most = min(200, result.num_classes)
    k = (
        most
        if most <= 2
        else st.slider("Tokens shown (top k by frequency)", 2, most, min(30, most), key="top_k")
    )
    tabs = st.tabs(["Class means", "LM head rows"])
    for tab, of, title in zip(
        tabs, ("means", "weights"), ("cos(μ_c − μ_G, μ_c′ − μ_G)", "cos(w_c, w_c′)")
    ):
        with tab:
            if of == "weights" and "class_weight" not in result.arrays:
                st.info("This layer does not feed the LM head; pick its input in the sidebar.")
                continue
            matrix, labels = top_class_cosines(result, k, of)
            common.chart(plots.cosine_heatmap(matrix, labels, title), f"tokens-{of}")
