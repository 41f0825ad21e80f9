"""ncviz dashboard: navigation between the pages; every page reads the session's analysis."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

from ncviz.server.heap import collect_after_page

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import common` from the pages

st.set_page_config(page_title="ncviz — neural collapse", page_icon="◬", layout="wide")

# not "pages/": Streamlit would also serve that folder as legacy pages (their own URLs, no
# navigation), which a deep link like /overview?run=… then opens instead of this app
PAGES = Path(__file__).resolve().parent / "views"
navigation = st.navigation(
    {
        "Data": [
            st.Page(
                PAGES / "source.py", title="Source", icon=":material/folder_open:", default=True
            ),
            st.Page(PAGES / "overview.py", title="Overview", icon=":material/dashboard:"),
        ],
        "Collapse": [
            st.Page(PAGES / "geometry.py", title="Geometry", icon=":material/change_history:"),
            st.Page(PAGES / "angles.py", title="Angles", icon=":material/grid_on:"),
            st.Page(PAGES / "spectra.py", title="Spectra", icon=":material/equalizer:"),
            st.Page(PAGES / "depth.py", title="Depth", icon=":material/layers:"),
            st.Page(PAGES / "training.py", title="Training", icon=":material/timeline:"),
            st.Page(PAGES / "imbalance.py", title="Imbalance", icon=":material/balance:"),
            st.Page(PAGES / "environments.py", title="Environments", icon=":material/public:"),
            st.Page(PAGES / "regression.py", title="Regression", icon=":material/show_chart:"),
            st.Page(PAGES / "language.py", title="Language", icon=":material/translate:"),
            st.Page(PAGES / "embedding.py", title="Embedding", icon=":material/scatter_plot:"),
        ],
        "Why collapse": [
            st.Page(
                PAGES / "feature_learning.py",
                title="Feature learning",
                icon=":material/psychology:",
            ),
            st.Page(PAGES / "transfer.py", title="Transfer", icon=":material/call_split:"),
        ],
        "Theory": [
            st.Page(PAGES / "theory.py", title="Theory lab", icon=":material/science:"),
        ],
        "Across runs": [
            st.Page(PAGES / "study.py", title="Study", icon=":material/query_stats:"),
        ],
        "Share": [
            st.Page(PAGES / "compare.py", title="Compare", icon=":material/compare:"),
            st.Page(PAGES / "export.py", title="Export", icon=":material/download:"),
        ],
    },
    expanded=True,
)
try:
    navigation.run()
finally:
    collect_after_page()  # not after the follow ticks: see ncviz.server.heap
