"""Neural regression collapse: NRC1–3 over training, feature spectrum, WWᵀ vs the UFM optimum."""

import common
import streamlit as st

from ncviz import plots
from ncviz.metrics import RegressionResult

st.title("Regression")
selected = common.page_result(RegressionResult)
if selected:
    analysis, checkpoint, layer, result = selected
    cols = st.columns(4)
    for column, key in zip(cols, ["nrc1", "nrc2", "nrc3", "nrc3_gamma"]):
        column.metric(key, f"{result.metrics[key]:.4g}" if key in result.metrics else "—")
    if len(analysis.checkpoints) > 1:
        columns = st.columns(3)
        for column, metric in zip(columns, ["nrc1", "nrc2", "nrc3"]):
            with column:
                common.chart(common.over_training(analysis, metric, [layer]), f"r-{metric}")
    common.chart(
        plots.bars(
            result.arrays["evr_features"][:20],
            "Explained variance of feature PCs",
            "principal component",
            "explained variance ratio",
        ),
        "evr",
    )
    if "ww" in result.arrays:
        left, right = st.columns(2)
        with left:
            common.chart(plots.heatmap(result.arrays["ww"], "Learned WWᵀ"), "ww")
        with right:
            common.chart(
                plots.heatmap(result.arrays["ufm_ww"], "UFM shape Σ_Y^½ − γ^½ I (scaled)"), "ufm"
            )
        common.chart(
            plots.curve(
                result.arrays["gamma_grid"],
                result.arrays["nrc3_curve"],
                "NRC3 against γ",
                "γ",
                "nrc3",
                result.metrics["nrc3_gamma"],
            ),
            "g",
        )
    else:
        st.info("This layer is not read by the regression head; pick its input layer for NRC2/3.")
