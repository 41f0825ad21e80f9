"""Download the metrics table, a self-contained HTML report, and single figures."""

import io

import common
import streamlit as st

from ncviz.report import analysis_report, figure_html, standard_views

st.title("Export")
st.write("Files are generated when you click (reports inline plotly.js and open offline).")
analysis = common.ensure_analysis()
if analysis:
    checkpoint, layer = common.selectors(analysis)
    convention = common.convention_choice(
        "Whose definitions and row names the exported table follows (its convention column "
        "says which); the figures and the report stay in ncviz's."
    )
    tabled = analysis
    source = st.session_state.get("request")
    if convention != analysis.convention and source is not None:  # the run in a paper's rows
        request = common.in_convention(source, convention)
        job = common.submit_analysis(request, f"{analysis.run} ({convention})")
        if common.job_panel(job, f"{convention} rows", f"export-{convention}"):
            tabled = job.result
        elif not job.finished:
            st.stop()  # the page reruns when the rows are ready
        # a convention the run cannot take said why in one line; ncviz's table stays below
    tidy = tabled.tidy()  # with the per-group rows (a `group` column) when the data have groups
    cols = st.columns(2)
    cols[0].download_button(
        f"Metrics table (CSV, {tabled.convention})",
        tidy.to_csv(index=False),
        f"{analysis.run}-metrics.csv",
        "text/csv",
        key="dl_csv",
    )
    parquet = io.BytesIO()
    tidy.to_parquet(parquet, index=False)
    cols[1].download_button(
        f"Metrics table (Parquet, {tabled.convention})",
        parquet.getvalue(),
        f"{analysis.run}-metrics.parquet",
        key="dl_parquet",
    )
    label = common.checkpoint_label(analysis, checkpoint)
    views = standard_views(analysis, checkpoint, layer, label)
    figures = views[0]

    def report():
        return analysis_report(analysis, checkpoint, layer, label, views)

    st.download_button(
        "HTML report of these views",
        report,
        f"{analysis.run}-report.html",
        "text/html",
        key="dl_report",
        type="primary",
    )
    st.subheader("Single figures")
    for index, (title, figure) in enumerate(figures):
        st.download_button(
            f"{title} (interactive HTML)",
            lambda figure=figure: figure_html(figure),  # made on click: plotly.js is inlined
            f"{analysis.run}-{title.replace(' ', '_')}.html",
            "text/html",
            key=f"dl_fig_{index}",
        )
    st.caption(
        "Each file opens offline (plotly.js inside, ~5 MB). Every chart's toolbar also saves a "
        "PNG of what you see."
    )
