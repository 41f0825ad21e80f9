"""Download the metrics table, a self-contained HTML report, and single figures."""

import io

import common
import streamlit as st

from ncviz import plots
from ncviz.metrics import CollapseResult
from ncviz.report import figure_html, html_report

st.title("Export")
st.write("Files are generated when you click (reports inline plotly.js and open offline).")
analysis = common.ensure_analysis()
if analysis:
    checkpoint, layer = common.selectors(analysis)
    result = analysis.results[(checkpoint, layer)]
    table = analysis.table
    tidy = analysis.tidy()  # with the per-group rows (a `group` column) when the data have groups
    cols = st.columns(2)
    cols[0].download_button(
        "Metrics table (CSV)",
        tidy.to_csv(index=False),
        f"{analysis.run}-metrics.csv",
        "text/csv",
        key="dl_csv",
    )
    parquet = io.BytesIO()
    tidy.to_parquet(parquet, index=False)
    cols[1].download_button(
        "Metrics table (Parquet)",
        parquet.getvalue(),
        f"{analysis.run}-metrics.parquet",
        key="dl_parquet",
    )
    figures = []
    if isinstance(result, CollapseResult):
        labels = [str(c) for c in result.classes]
        figures += [
            ("Geometry", plots.geometry_figure(result)),
            ("Norms", plots.norms_figure(result)),
            ("Spectra", plots.spectrum_figure(result)),
        ]
        if "cos_means" in result.arrays:
            figures.append(
                (
                    "Angles",
                    plots.cosine_heatmap(
                        result.arrays["cos_means"], labels, "cos of centred class means"
                    ),
                )
            )
    if len(analysis.checkpoints) > 1:
        onset = analysis.terminal_phase_onset()
        for metric in [
            m
            for m in ("nc1", "nc2_etf_distance", "nc3", "nc4", "nrc1", "nrc2")
            if m in set(table["metric"])
        ]:
            figures.append(
                (
                    f"{metric} over training",
                    plots.training_figure(table, metric, analysis.layers, onset, analysis.events),
                )
            )
    current = table[(table["checkpoint"] == checkpoint) & (table["layer"] == layer)]
    grouped = analysis.group_results.get((checkpoint, layer))
    tables = [(f"Metrics at {common.checkpoint_label(analysis, checkpoint)}, layer {layer}",
               current[["metric", "value"]])]  # fmt: skip
    if grouped is not None:
        figures += [("Prototypes per group", plots.prototype_figure(grouped)),
                    ("Prototype distances", plots.distance_matrix_figure(grouped))]  # fmt: skip
        groups = analysis.group_table
        at = groups[(groups["checkpoint"] == checkpoint) & (groups["layer"] == layer)]
        tables.append(("Per group", at.pivot_table(index="group", columns="metric",
                                                   values="value").reset_index()))  # fmt: skip

    def report():
        return html_report(
            f"ncviz report — {analysis.run}",
            figures,
            tables,
            notes=f"Source: {analysis.source}",
        )

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
