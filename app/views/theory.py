"""Unconstrained-features models in the browser: train, watch loss, ranks, spectra, heatmaps."""

import dataclasses
import hashlib
import json

import common
import streamlit as st

from ncviz import plots
from ncviz.metrics.spectra import collapse_rank
from ncviz.server.jobs import default_runner
from ncviz.theory import (
    DeepRFMResult,
    DeepRFMSettings,
    DeepUFMResult,
    DeepUFMSettings,
    RegressionUFMResult,
    RegressionUFMSettings,
    UFMResult,
    UFMSettings,
    run_deep_rfm,
    sweep,
    sweep_summary,
    train_deep_ufm,
    train_regression_ufm,
    train_ufm,
)

TRAINERS = {
    "Deep UFM": train_deep_ufm,
    "UFM": train_ufm,
    "Regression UFM": train_regression_ufm,
    "Deep RFM": run_deep_rfm,
}


def _key(kind: str, settings) -> str:
    text = json.dumps([kind, dataclasses.asdict(settings)], sort_keys=True, default=str)
    return "theory-" + hashlib.sha256(text.encode()).hexdigest()[:20]


def _train(kind, settings, key, progress):
    job = default_runner().get(key)
    return TRAINERS[kind](settings, progress, on_record=lambda r: setattr(job, "partial", r))


def deep_settings() -> DeepUFMSettings:
    c = st.columns(4)
    return DeepUFMSettings(
        num_classes=c[0].number_input("Classes K", 2, 50, 10, key="t_k"),
        depth=c[1].number_input("Layers L", 2, 10, 4, key="t_l"),
        width=c[2].number_input("Width d", 2, 200, 30, key="t_d"),
        per_class=c[3].number_input("Samples per class", 1, 20, 1, key="t_n"),
        lambda_w=c[0].number_input("λ (all weights)", 0.0, 1.0, 0.004, format="%.4f", key="t_lw"),
        lambda_h=c[1].number_input("λ_H1", 0.0, 1.0, 0.004, format="%.4f", key="t_lh"),
        lr=c[2].number_input("Learning rate", 0.001, 5.0, 0.5, key="t_lr"),
        steps=c[3].number_input("Steps", 100, 100_000, 8000, step=1000, key="t_steps"),
        seed=c[0].number_input("Seed", 0, 10_000, 0, key="t_seed"),
    )


def ufm_settings() -> UFMSettings:
    c = st.columns(4)
    return UFMSettings(
        num_classes=c[0].number_input("Classes K", 2, 100, 10, key="u_k"),
        dim=c[1].number_input("Dimension d", 1, 500, 20, key="u_d"),
        per_class=c[2].number_input("Samples per class", 2, 50, 5, key="u_n"),
        loss=c[3].selectbox("Loss", ["ce", "mse"], key="u_loss"),
        lambda_w=c[0].number_input("λ_W", 0.0, 1.0, 5e-4, format="%.5f", key="u_lw"),
        lambda_h=c[1].number_input("λ_H", 0.0, 1.0, 5e-4, format="%.5f", key="u_lh"),
        optimizer=c[2].selectbox("Optimizer", ["gd", "adam"], key="u_opt"),
        lr=c[3].number_input("Learning rate", 0.0001, 10.0, 2.0, key="u_lr"),
        steps=c[0].number_input("Steps", 100, 100_000, 4000, step=500, key="u_steps"),
        seed=c[1].number_input("Seed", 0, 10_000, 0, key="u_seed"),
    )


def regression_settings() -> RegressionUFMSettings:
    c = st.columns(4)
    return RegressionUFMSettings(
        targets=c[0].number_input("Target dimension n", 1, 10, 3, key="r_n"),
        dim=c[1].number_input("Dimension d", 1, 200, 16, key="r_d"),
        correlation=c[2].number_input("Target correlation", -0.4, 0.95, 0.5, key="r_c"),
        lambda_h=c[3].number_input("λ_H", 0.0, 1.0, 0.01, format="%.4f", key="r_lh"),
        lambda_w=c[0].number_input("λ_W", 0.0, 1.0, 0.01, format="%.4f", key="r_lw"),
        steps=c[1].number_input("Steps", 100, 100_000, 3000, step=500, key="r_steps"),
        seed=c[2].number_input("Seed", 0, 10_000, 0, key="r_seed"),
    )


def rfm_settings() -> DeepRFMSettings:
    c = st.columns(4)
    return DeepRFMSettings(
        data=c[0].selectbox("Data", ["digits", "gaussian"], key="f_data"),
        num_classes=c[1].number_input("Classes K", 2, 10, 10, key="f_k"),
        per_class=c[2].number_input("Samples per class", 2, 100, 20, key="f_n"),
        depth=c[3].number_input("Layers", 1, 20, 6, key="f_depth"),
        width=c[0].number_input("Random features", 8, 2048, 256, key="f_width"),
        bandwidth=c[1].number_input("Bandwidth L", 0.05, 100.0, 1.0, key="f_bw"),
        ridge=c[2].number_input("Ridge λ", 0.0, 10.0, 1e-3, format="%.4f", key="f_ridge"),
        iterations=c[3].number_input("RFM iterations", 1, 10, 3, key="f_iter"),
        seed=c[0].number_input("Seed", 0, 10_000, 0, key="f_seed"),
    )


def show_rfm(result) -> None:
    if not result.nc1:
        return
    layers = list(range(1, len(result.nc1) + 1))
    left, right = st.columns(2)
    for column, title, rfm, control in (
        (left, "NC1 (Tr Σ_W / Tr Σ_B) by layer", result.nc1, result.nc1_features_only),
        (right, "ETF distance of the class means by layer", result.nc2, result.nc2_features_only),
    ):
        series = {"Deep RFM (AGOP projection)": rfm, "random features only": control}
        with column:
            common.chart(
                plots.history_figure(layers, series, title, x_title="layer"), f"f-{title[:3]}"
            )
    st.caption(
        f"Layer {len(layers)}: NC1 {result.nc1[-1]:.4f} with the AGOP projection vs "
        f"{result.nc1_features_only[-1]:.4f} with random features only (layer 1: "
        f"{result.nc1[0]:.4f}); training accuracy of the layer's kernel machine "
        f"{result.train_accuracy[-1]:.3f} (Beaglehole et al. 2024)."
    )


def show_deep(result) -> None:
    if not result.steps:
        return
    s = result.settings
    loss_fig = plots.history_figure(
        result.steps,
        {"total": result.loss, "fit": result.fit, "regulariser": result.regulariser},
        "Loss",
        reference=("DNC (rank-K) optimum", result.dnc_reference),
    )
    left, right = st.columns(2)
    with left:
        common.chart(loss_fig, "t-loss")
    centring = str(st.session_state.get("means_centring", "centred"))
    history = result.ranks(centring)
    with right:
        common.chart(plots.ranks_figure(result.steps, history, "H", centring=centring), "t-ranks")
    st.caption(
        f"Ranks of the {centring} class means of H1…H{s.depth} at step {result.steps[-1]}: "
        f"{history[-1]} · pre-ReLU {result.ranks(centring, pre=True)[-1]} (deep neural collapse: "
        f"{collapse_rank(s.num_classes, centring)} {centring}) · loss {result.loss[-1]:.4f} vs DNC "
        f"{result.dnc_reference:.4f}"
    )
    left, right = st.columns(2)
    with left:
        figure = plots.layer_spectra_figure(result.means(centring), centring=centring)
        common.chart(figure, "t-spectra")
    with right:
        layer = st.slider("Layer l", 1, s.depth, s.depth, key="t_layer")
        m = result.means(centring)[layer - 1]
        tab_m, tab_g = st.tabs(["M_l", "M_lᵀ M_l"])
        with tab_m:
            common.chart(plots.heatmap(m, f"Class means M_{layer} (d × K, {centring})"), "t-m")
        with tab_g:
            common.chart(plots.heatmap(m.T @ m, f"Gram M_{layer}ᵀ M_{layer}"), "t-g")


def show_ufm(result) -> None:
    if not result.metrics:
        return
    keys = [k for k in ("nc1", "nc2_etf_distance", "nc3") if k in result.metrics[0]]
    series = {k: [max(m[k], 1e-17) for m in result.metrics] for k in keys}
    left, right = st.columns(2)
    with left:
        common.chart(plots.history_figure(result.steps, {"loss": result.loss}, "Loss"), "u-loss")
    with right:
        common.chart(plots.history_figure(result.steps, series, "Collapse metrics"), "u-nc")


def show_regression(result) -> None:
    if not result.metrics:
        return
    series = {k: [max(m[k], 1e-17) for m in result.metrics] for k in ("nrc1", "nrc2", "nrc3")}
    common.chart(plots.history_figure(result.steps, series, "NRC over training"), "r-nrc")
    if result.ww is not None:
        st.caption(f"‖WWᵀ − optimum‖/‖optimum‖ = {result.relative_error():.2e}")
        left, right = st.columns(2)
        with left:
            common.chart(plots.heatmap(result.ww, "Learned WWᵀ"), "r-ww")
        with right:
            common.chart(plots.heatmap(result.ww_optimum, "UFM optimum"), "r-opt")


SHOW = {
    DeepUFMResult: show_deep,
    UFMResult: show_ufm,
    RegressionUFMResult: show_regression,
    DeepRFMResult: show_rfm,
}

st.title("Theory lab")
st.write(
    "Unconstrained-features models: the features are free parameters, so training shows what "
    "the loss and regularisation alone favour. The deep UFM reproduces Súkeník et al. 2024: "
    "beyond two layers and two classes, gradient descent finds class means of rank below K "
    "with a lower loss than deep neural collapse."
)
kind = (
    st.segmented_control("Model", list(TRAINERS), default="Deep UFM", key="theory_kind")
    or "Deep UFM"
)
settings = {
    "Deep UFM": deep_settings,
    "UFM": ufm_settings,
    "Regression UFM": regression_settings,
    "Deep RFM": rfm_settings,
}[kind]()
key = _key(kind, settings)
runner = default_runner()
if st.button("Train", type="primary", key="theory_train"):
    runner.submit(key, f"{kind} training", _train, kind, settings, key, isolated=False)
    st.session_state["theory_job"] = key


current = runner.get(st.session_state.get("theory_job", ""))


@st.fragment(run_every=1.0 if current is not None and not current.finished else None)
def live() -> None:
    job = runner.get(st.session_state.get("theory_job", ""))
    if job is None:
        st.info("Set the model and press **Train**.")
        return
    if job.status in ("failed", "cancelled"):
        st.error(f"Training {job.status}: {job.error}")
        return
    result = job.result if job.finished else job.partial
    if not job.finished:
        st.progress(job.fraction, text=f"Training: {job.message}")
        if st.button("Cancel", key="theory_cancel"):
            job.cancel()
    if result is not None:
        SHOW[type(result)](result)
    if job.finished and current is not None and not current.finished:
        st.rerun()  # stop polling


if kind == "Deep UFM":  # ranks and spectra of centred or uncentred means, as on Spectra
    common.means_centring()
live()

if kind == "Deep UFM":
    with st.expander("Sweep: rank at convergence against a setting"):
        c = st.columns(3)
        parameter = c[0].selectbox("Setting", ["lambda_w", "width", "depth"], key="sw_param")
        values_text = c[1].text_input("Values", "0.001, 0.004, 0.01", key="sw_values")
        seeds = c[2].number_input("Seeds", 1, 10, 3, key="sw_seeds")
        if st.button("Run sweep", key="sw_run"):
            try:
                values = [type(getattr(settings, parameter))(v) for v in values_text.split(",")]
            except ValueError:
                st.error("values must be numbers separated by commas.")
            else:
                sweep_key = _key("sweep", settings) + f"-{parameter}-{values}-{seeds}"
                runner.submit(
                    sweep_key,
                    "sweep",
                    sweep,
                    settings,
                    parameter,
                    values,
                    list(range(int(seeds))),
                    isolated=False,  # numbers from bounded sliders
                )
                st.session_state["sweep_job"] = sweep_key
        job = runner.get(st.session_state.get("sweep_job", ""))
        if job is not None and common.job_panel(job, "Sweep", "sweep"):
            table = job.result
            st.dataframe(table, hide_index=True, width="stretch")
            st.dataframe(sweep_summary(table, parameter), width="stretch")
