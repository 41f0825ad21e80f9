"""UMAP or PCA of a layer's features, coloured by class, class means marked."""

import common
import streamlit as st

from ncviz import plots
from ncviz.analysis import origin_of
from ncviz.metrics import RegressionResult
from ncviz.server.jobs import default_runner
from ncviz.server.requests import embed_layer

st.title("Embedding")
analysis = common.ensure_analysis()
if analysis:
    checkpoint, layer = common.selectors(analysis)
    left, right = st.columns(2)
    method = (
        left.segmented_control(
            "Method", ["pca", "umap"], default="pca", key="emb_method", format_func=str.upper
        )
        or "pca"
    )
    max_points = right.select_slider(
        "Points (at most)",
        [1000, 2000, 5000, 10000, 20000, 50000, 200_000, 1_000_000],
        value=5000,
        key="emb_points",
    )
    result = analysis.results.get((checkpoint, layer))
    targets = len(result.arrays["target_cov"]) if isinstance(result, RegressionResult) else 0
    target = 0
    if targets > 1:
        target = st.selectbox(
            "Colour by target",
            range(targets),
            key="emb_target",
            format_func=lambda t: f"target {t + 1}",
        )
    if method == "umap":
        st.caption(
            "The first UMAP in a server process compiles numba code: up to a few minutes on a "
            "busy machine (the Docker image compiles it when built); later ones take seconds."
        )
    key = (
        f"embed-{st.session_state['analysis_key']}-{checkpoint}-{layer}-{method}-"
        f"{max_points}-{target}"
    )
    job = default_runner().submit(
        key,
        f"{method} of {layer}",
        embed_layer,
        origin_of(analysis),
        checkpoint,
        layer,
        split=analysis.split,
        method=method,
        max_points=max_points,
        target=target,
        isolated=common.isolated(analysis),
    )
    if common.job_panel(job, "Embedding", "embedding"):
        emb = job.result
        title = (
            f"{method.upper()} of {layer} at {common.checkpoint_label(analysis, checkpoint)}"
            f" — {emb.n_shown:,} of {emb.n_total:,} samples"
        )
        axes = ("PC1", "PC2") if method == "pca" else ("UMAP 1", "UMAP 2")
        figure = plots.embedding_figure(
            emb.coords, emb.labels, title, emb.centres, emb.values, f"target {target + 1}", axes
        )
        common.chart(figure, "emb")
        st.caption(
            "Samples beyond the cap are subsampled per class (the count is in the title); "
            "above 50,000 shown points the plot becomes a density image."
        )
        if analysis.entry_files:
            st.caption(
                "A recorded run keeps a uniform random sample of feature rows per layer and step "
                "(5,000 unless the Recorder was told otherwise); the plot shows that sample."
            )
        if method == "umap":
            st.caption("UMAP runs on the features' first 50 principal components.")
