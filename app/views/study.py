"""Which collapse statistic tracks a target (validation loss) across runs: the study view."""

import hashlib

import common
import pandas as pd
import streamlit as st

from ncviz import plots
from ncviz.errors import NcvizError
from ncviz.study import (
    DEFAULT_NAME_PATTERN,
    LINGUISTIC_COLLAPSE_TABLE,
    PAPER,
    numeric_columns,
    read_table,
    read_table_bytes,
    run_study,
    runs_frame,
    spans_decades,
    stack_runs,
)

BUNDLED = "Linguistic Collapse results (230 TinyStories models)"
UPLOAD = "Upload tables"
SERVER = "Runs of this server"


@st.cache_data(show_spinner="Bootstrapping the correlations…", max_entries=16)
def _study(_frame: pd.DataFrame, digest: str, against: str, derived: tuple, pattern: str):
    """The study of a table; ``digest`` (of the table's bytes) keys the cache."""
    return run_study(_frame, against, derived=list(derived), pattern=pattern or None)


def authors_table() -> list[pd.DataFrame]:
    """The shipped Linguistic Collapse results table (its rows follow lc2024)."""
    return [read_table(LINGUISTIC_COLLAPSE_TABLE).assign(convention="lc2024")]


st.title("Study across runs")
st.caption(
    f"One row per trained model; Spearman ρ of every statistic with a target, with a bootstrap 95% "
    f"interval, as in {PAPER}. Upload your own table (CSV/Parquet, one row per run) or several "
    "ncviz metrics tables (`ncviz analyze` output: each run's last checkpoint is used), or pick "
    "runs of this server (the log folder of `ncviz serve`, else the bundled runs: their last "
    "checkpoint's metrics and the final values of their training logs). The same numbers come "
    "from `ncviz study TABLE --against COLUMN`."
)
sources = [BUNDLED, UPLOAD, SERVER]
linked = common.RUNS_QUERY in st.query_params  # a link that names runs opens on them
source = st.radio("Table", sources, index=2 if linked else 0, horizontal=True, key="study_source")
try:
    if source == BUNDLED:
        tables = authors_table()
        digest = "bundled-linguistic-collapse"
    elif source == SERVER:
        picked = common.pick_runs(
            "Runs", common.server_runs(), "One row per run; the choice is in the address bar."
        )
        convention = common.convention_choice(
            "Whose definitions and column names the runs' statistics follow; lc2024 gives the "
            "Linguistic Collapse table's columns, so the runs can sit beside the authors' 230."
        )
        beside_authors = convention == "lc2024" and st.checkbox(
            f"Beside the 230 runs of {PAPER}", key="study_beside_lc"
        )
        if not picked:
            st.info("Pick the runs to study (at least 3 for a rank correlation).")
            st.stop()
        # a run that failed says so and is left out
        analyses, waiting = common.analyses_of(picked, convention)
        if waiting or not analyses:
            st.stop()
        tables = [a.table for a in analyses.values()]
        states = (f"{n}\0{len(a.table)}\0{a.checkpoints[-1]}" for n, a in analyses.items())
        digest = hashlib.sha256("\0".join([convention, *states]).encode()).hexdigest()
        digest += "-with-authors" if beside_authors else ""
    else:
        files = st.file_uploader(
            "Result tables",
            type=["csv", "parquet"],
            accept_multiple_files=True,
            key="study_upload",
        )
        if not files:
            st.info("Upload one table with a row per run, or several ncviz metrics tables.")
            st.stop()
        raw = [(f.name, f.getvalue()) for f in files]
        digest = hashlib.sha256(b"".join(data for _, data in raw)).hexdigest()
        tables = [read_table_bytes(name, data) for name, data in raw]
    layers = sorted({layer for t in tables if "layer" in t for layer in t["layer"].unique()})
    layer = st.selectbox("Layer (ncviz tables)", layers, index=len(layers) - 1) if layers else None
    if source == SERVER:
        frame = runs_frame(
            {n: a.table for n, a in analyses.items()},
            {n: a.log for n, a in analyses.items()},
            layer=layer,
        )
        if beside_authors:  # the runs under the authors' "model" column, their table below
            frame = stack_runs([frame.rename(columns={"run": "model"}), *authors_table()])
    else:
        frame = stack_runs(tables, layer=layer)

    left, right = st.columns(2)
    with left:
        defaults = ["agreement=hits/(hits+misses)"] if {"hits", "misses"} <= set(frame) else []
        # one box per set of columns: a formula typed for one table never lingers, unseen,
        # over another (the bundled table's hits/misses over an upload without them)
        columns = hashlib.sha256("\0".join(sorted(map(str, frame.columns))).encode())
        derived_text = st.text_area(
            "Derived columns (one name=expression per line)",
            "\n".join(defaults),
            key=f"study_derive_{columns.hexdigest()[:12]}",
            help="Arithmetic on columns: + − × ÷ ** and log, log10, exp, sqrt.",
        )
        pattern = st.text_input(
            "Run-name pattern (named groups become attributes)",
            DEFAULT_NAME_PATTERN,
            key="study_pattern",
        )
    derived = tuple(line.strip() for line in derived_text.splitlines() if line.strip())
    targets = numeric_columns(frame)
    with right:
        target_default = "val_loss" if "val_loss" in targets else targets[-1] if targets else None
        if target_default is None:
            st.error("The table has no numeric column to correlate; check its contents.")
            st.stop()
        against = st.selectbox(
            "Against (target)", targets, index=targets.index(target_default), key="study_target"
        )
    study = _study(frame, digest + layer if layer else digest, against, derived, pattern)
except NcvizError as error:
    st.error(str(error))
    st.stop()

table = study.correlations.copy()
table = table.reindex(table["rho"].abs().sort_values(ascending=False).index)
st.subheader(f"{len(study.frame)} runs: Spearman ρ with {against}")
if len(study.frame) < 3:
    st.warning("Fewer than 3 runs: rank correlations need at least 3 rows.")
common.chart(plots.correlation_figure(table, against), "study-rho")
st.dataframe(table.round(4), hide_index=True, width="stretch")
st.download_button(
    "correlations.csv", table.to_csv(index=False).encode(), "correlations.csv", "text/csv"
)

metrics = list(table.dropna(subset=["rho"])["metric"])
if metrics:
    left, right = st.columns([2, 1])
    with right:
        metric = st.selectbox("Metric", metrics, key="study_metric")
        colour_options = ["(none)", *study.attributes]
        colour = st.selectbox(
            "Colour by", colour_options, index=min(2, len(colour_options) - 1), key="study_colour"
        )
        log_x = st.checkbox("log x", spans_decades(study.frame[metric]), key=f"logx-{metric}")
        log_y = st.checkbox("log y", spans_decades(study.frame[against]), key=f"logy-{against}")
    with left:
        rho = float(table.set_index("metric").loc[metric, "rho"])
        figure = plots.study_scatter(
            study.frame,
            metric,
            against,
            None if colour == "(none)" else colour,
            names=study.name_column,
            rho=rho,
            log_x=log_x,
            log_y=log_y,
        )
        common.chart(figure, "study-scatter")
