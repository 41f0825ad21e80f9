"""Headline metrics of the selected checkpoint and layer, each beside its chance baseline."""

import common
import streamlit as st

from ncviz.metrics import METRICS, RegressionResult
from ncviz.metrics.summaries import reading_notes
from ncviz.server.jobs import default_runner
from ncviz.server.requests import chance_of
from ncviz.study import train_vs_test

HEADLINE = [
    "nc1",
    "nc1_trace_ratio",
    "cdnv",
    "nc2_etf_distance",
    "nc2_equiangle_means",
    "nc2_equinorm_means",
    "nc3",
    "nc3_gram",
    "nc4",
    "accuracy",
    "rank_means",
    "gnc2_log_var",
]

REGRESSION_HEADLINE = ["nrc1", "nrc2", "nrc3", "nrc3_gamma"]
COLUMNS = 3  # wide enough that no label is cut ("Equiangularity (means) · nc2_equiangle_means")


def headline(metrics: dict, keys: list[str], chance: dict) -> None:
    """Each metric in a bordered box with its meaning (and chance level) under it."""
    keys = [k for k in keys if k in metrics]
    for row in range(0, len(keys), COLUMNS):
        for column, key in zip(st.columns(COLUMNS), keys[row : row + COLUMNS]):
            info = METRICS[key]
            help_text = f"{info.meaning}. Source: {info.source}."
            if info.collapsed is not None:
                help_text += f" Exact collapse: {info.collapsed:g}."
            column.metric(
                f"{info.label} · {key}", f"{metrics[key]:.4g}", help=help_text, border=True
            )
            floor = metrics.get(f"{key}_floor")
            if key in chance:
                at_least = "" if floor is None else f" · floor {floor:.3g}"
                column.caption(f"chance {chance[key]:.3g}{at_least} · {info.meaning}")
            else:
                column.caption(info.meaning)


st.title("Overview")
analysis = common.ensure_analysis()
if analysis is not None:
    checkpoint, layer = common.selectors(analysis)
    result = analysis.results.get((checkpoint, layer))
    where = f"{analysis.run} · {common.checkpoint_label(analysis, checkpoint)} · layer `{layer}`"
    if isinstance(result, RegressionResult):
        st.caption(
            f"{where} · neural regression collapse (Andriopoulos et al. 2024); the Regression "
            "page has the full view."
        )
        headline(result.metrics, REGRESSION_HEADLINE, {})
    elif result is not None:
        d = result.arrays["class_means"].shape[1]
        st.caption(
            f"{where} · C = {result.num_classes}, d = {d}, "
            f"N = {int(result.arrays['class_counts'].sum()):,}"
        )
        for warning in result.warnings:
            st.warning(warning)
        # the same metrics on random means: C²·d work, so in a worker (32 s at C = 32k)
        job = default_runner().submit(
            f"chance-{result.num_classes}-{d}",
            "chance baselines",
            chance_of,
            result.num_classes,
            d,
            isolated=True,
        )
        chance = job.result if common.job_panel(job, "Chance baselines", "chance") else {}
        for note in reading_notes(result.metrics, result.num_classes, d, chance):
            st.info(note)
        headline(result.metrics, HEADLINE, chance)
        onset = analysis.terminal_phase_onset()
        if onset is not None:
            st.caption(f"Zero training error (terminal phase) from epoch {onset}.")
    if analysis.task == "classification" and st.toggle(
        "Train vs test",
        value=False,
        key="train_vs_test",
        help="The same checkpoint and layer measured on the held-out split (Hui et al. 2022).",
    ):
        tables = common.split_tables(analysis)
        if tables is not None:
            keys = ["nc1", "nc1_trace_ratio", "cdnv", "nc2_etf_distance", "nc4", "accuracy"]
            frame = train_vs_test(tables, checkpoint, layer, keys)
            if "nc1" in frame.index and {"train", "test"} <= set(frame.columns):
                st.metric(
                    "NC1 on test data",
                    f"{frame.loc['nc1', 'test']:.4g}",
                    delta=f"{frame.loc['nc1', 'test'] - frame.loc['nc1', 'train']:+.4g} vs train",
                    delta_color="inverse",
                )
            st.dataframe(frame, width="stretch")
