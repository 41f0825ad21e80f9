"""Few-shot transfer to new classes against the source model's geometric complexity."""

import common
import pandas as pd
import streamlit as st

from ncviz import plots
from ncviz.errors import NcvizError
from ncviz.study import correlations, read_table_bytes, spans_decades
from ncviz.transfer import bundled_sweep

TARGETS = ["target_cdnv", "target_nc1_trace_ratio", "shot1_acc", "shot5_acc"]

st.title("Transfer")
st.caption(
    "Pre-trained on some classes, embedded on new ones: lower geometric complexity of the "
    "source embedding bounds the CDNV of the new classes, and collapsed new classes are easy "
    "to learn from a few examples (Munn, Dherin & Gonzalvo 2024, arXiv 2405.15706). One point "
    "per pre-training run; ρ is Spearman's, with a 95% bootstrap interval."
)
choice = st.segmented_control(
    "Sweep",
    ["Bundled (digits 0–4 → 5–9)", "Upload a table"],
    default="Bundled (digits 0–4 → 5–9)",
    key="transfer_source",
)
table = None
if choice == "Upload a table":
    upload = st.file_uploader(
        "One row per run: source_gc plus target_cdnv and/or shot<k>_acc columns (CSV/Parquet)",
        type=["csv", "parquet"],
        key="transfer_upload",
    )
    if upload is not None:
        try:
            table = read_table_bytes(upload.name, upload.getvalue())
        except NcvizError as error:
            st.error(str(error))
elif bundled_sweep().is_file():
    table = pd.read_csv(bundled_sweep())
else:
    st.info("The bundled sweep is missing; recreate it with `ncviz demo --runs digits-transfer`.")

if table is not None:
    present = [t for t in TARGETS if t in table.columns]
    if "source_gc" not in table.columns or not present:
        st.error("The table needs a source_gc column and one of " + ", ".join(TARGETS) + ".")
    else:
        rho = correlations(table, "source_gc", present)
        st.dataframe(rho, hide_index=True, width="stretch")
        names = "model" if "model" in table.columns else None
        color = "gc_penalty" if "gc_penalty" in table.columns else None
        columns = st.columns(2)
        for index, target in enumerate([t for t in ("target_cdnv", "shot5_acc") if t in present]):
            value = float(rho.set_index("metric").loc[target, "rho"])
            figure = plots.study_scatter(
                table,
                "source_gc",
                target,
                color,
                names=names,
                rho=value,
                log_x=spans_decades(table["source_gc"]),
            )
            with columns[index % 2]:
                common.chart(figure, f"transfer-{target}")
        if names and any(c.startswith("shot") for c in table.columns):
            common.chart(plots.shots_figure(table, names), "transfer-shots")
        st.dataframe(table, hide_index=True, width="stretch")
