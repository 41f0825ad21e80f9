"""ncviz dashboard entry point (minimal first page: metrics of a synthetic collapse example)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ncviz.metrics import METRICS, chance_baselines, collapse_result
from ncviz.synthetic import noisy_etf

st.set_page_config(page_title="ncviz — neural collapse", layout="wide")
st.title("ncviz: neural collapse metrics")
st.caption(
    "A synthetic example with a known answer: class means on a simplex ETF plus isotropic "
    "within-class noise. Lower noise means stronger collapse."
)

left, right = st.columns(2)
num_classes = left.slider("Classes C", 2, 50, 10, key="num_classes")
dim = left.slider("Feature dimension d", max(num_classes - 1, 2), 512, 64, key="dim")
noise = right.select_slider(
    "Within-class noise σ", [0.0, 0.001, 0.01, 0.03, 0.1, 0.3, 1.0], value=0.1, key="noise"
)
per_class = right.slider("Samples per class", 2, 500, 100, key="per_class")

data = noisy_etf(num_classes, dim, per_class, noise)
result = collapse_result(data.features, data.labels, data.weight)
chance = chance_baselines(num_classes, dim)

rows = [
    {
        "metric": key,
        "name": METRICS[key].label if key in METRICS else key,
        "value": value,
        "chance": chance.get(key),
        "collapsed value": METRICS[key].collapsed if key in METRICS else None,
        "meaning": METRICS[key].meaning if key in METRICS else "",
    }
    for key, value in result.metrics.items()
]
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
st.write(
    f"Population values for this setting: NC1 = σ²(C−1)²/C = "
    f"{noise**2 * (num_classes - 1) ** 2 / num_classes:.4g}, "
    f"Tr Σ_W/Tr Σ_B = dσ² = {dim * noise**2:.4g}."
)
