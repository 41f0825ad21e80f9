"""Every dashboard page renders for every bundled run; uploads work; bad uploads show one line.

Streamlit's AppTest runs the real scripts without a browser.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from ncviz.demos.catalog import bundled_runs
from ncviz.demos.classification import MLP
from ncviz.server.jobs import default_runner
from ncviz.server.scratch import upload_needs

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app" / "main.py")
CLASSIFICATION_PAGES = {
    "overview": 0,
    "geometry": 2,
    "angles": 3,
    "spectra": 3,
    "depth": 1,
    "imbalance": 0,
    "embedding": 1,
    "export": 0,
    "environments": 0,
}
COMMON_PAGES = [
    "training",
    "compare",
    "depth",
    "export",
    "language",
    "feature_learning",
    "transfer",
]


class SettledAppTest(AppTest):
    """An AppTest whose every run ends only when the background jobs it started have finished:
    it waits on the jobs' state (never on a timer) and reruns the script, as the page's own
    progress fragment would — also after a job the page saw running ended before the run did.
    A slow machine makes tests slower, never red."""

    def _run(self, widget_state=None, timeout=None):
        runner = default_runner()
        failed: set[str] = set()  # a failed job is submitted again by every run that shows it
        while True:
            settled = {id(job) for job in runner.jobs() if job.finished}
            super()._run(widget_state, timeout)
            widget_state = None
            moving = [job for job in runner.jobs() if id(job) not in settled]
            if all(job.key in failed for job in moving):  # nothing new ran: the page is final
                return self
            for job in moving:
                assert job.wait(900), f"job {job.label} did not finish"
                if job.status in ("failed", "cancelled"):
                    failed.add(job.key)


def _app() -> AppTest:
    return SettledAppTest(APP, default_timeout=600)  # a hang guard per script run


def _visit(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"views/{page}.py")
    return at.run()


def _plotted(values) -> np.ndarray:
    """A trace's values from a chart's JSON (plotly sends numeric arrays base64-encoded)."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    return np.asarray(values, dtype=float)


def _assert_clean(at: AppTest, where: str) -> None:
    assert not at.exception, f"{where}: {[e.value for e in at.exception]}"
    assert not at.error, f"{where}: {[e.value for e in at.error]}"


def test_first_visit_shows_the_bundled_demo():
    at = _app().run()
    _assert_clean(at, "source")
    assert at.session_state["request"].label == "digits-mlp"
    assert any("digits-mlp" in s.value for s in at.success)
    _visit(at, "overview")
    assert {"NC1 · nc1", "NC4 · nc4"} <= {m.label for m in at.metric}


@pytest.mark.slow
@pytest.mark.parametrize("run", bundled_runs())
def test_every_page_renders_for_every_bundled_run(run):
    at = _app().run()
    at.selectbox(key="bundled_run").set_value(run).run()
    _assert_clean(at, f"{run}/source")
    regression = "regression" in run
    pages = ["regression", "embedding"] if regression else list(CLASSIFICATION_PAGES)
    for page in pages + COMMON_PAGES:
        _visit(at, page)
        _assert_clean(at, f"{run}/{page}")
        charts = len(at.get("plotly_chart"))
        if page in CLASSIFICATION_PAGES and not regression:
            assert charts >= CLASSIFICATION_PAGES[page], (run, page, charts)
        if page == "regression":
            assert charts >= 5, (run, charts)
        if page == "embedding" and regression:  # one coloured trace, not a legend per value
            assert len(json.loads(at.get("plotly_chart")[0].proto.spec)["data"]) == 1
        if page == "training" and "-R" not in run:
            assert charts >= 2, (run, charts)
        if page == "language" and run != "markov-lm":  # the note, and no chart under it
            assert charts == 0 and any("run." in i.value for i in at.info), run
        if page == "feature_learning" and (regression or run == "markov-lm"):
            assert any("run." in i.value and "bundled" not in i.value for i in at.info), run
    if not regression:
        _visit(at, "regression")
        task = "language" if run == "markov-lm" else "classification"
        assert any(f"{task} run" in i.value for i in at.info)


def _upload(at: AppTest, files, kwargs: dict | None = None, data: str = "builtin:digits"):
    at.segmented_control(key="source_mode").set_value("Upload").run()
    at.file_uploader(key="upload_checkpoints").set_value(files).run()
    needs = upload_needs([name for name, *_ in files])
    if needs.model != "unused":
        at.selectbox(key="arch").set_value("mlp").run()
        if kwargs is not None:
            at.text_area(key="kwargs_mlp").set_value(json.dumps(kwargs)).run()
    if needs.data != "unused":
        at.selectbox(key="builtin_data").set_value(data).run()
    return at.button(key="analyse_upload").click().run()


def _checkpoint_bytes(name: str = "epoch_0600.safetensors") -> bytes:
    return (ROOT / "checkpoints" / "digits-mlp" / name).read_bytes()


def test_upload_a_checkpoint_with_a_bundled_dataset_produces_metrics():
    at = _upload(
        _app().run(), [("final.safetensors", _checkpoint_bytes(), "application/octet-stream")]
    )
    _assert_clean(at, "upload")
    assert any("**final**: 1 checkpoint(s)" in s.value for s in at.success)
    _visit(at, "overview")
    _assert_clean(at, "overview after upload")
    values = {m.label: m.value for m in at.metric}
    assert float(values["Accuracy · accuracy"]) == 1.0


def test_upload_several_checkpoints_makes_a_run():
    files = [
        (n, _checkpoint_bytes(n), "application/octet-stream")
        for n in ("epoch_0000.safetensors", "epoch_0010.safetensors", "epoch_0600.safetensors")
    ]
    at = _upload(_app().run(), files)
    _assert_clean(at, "upload run")
    _visit(at, "training")
    _assert_clean(at, "training after upload")
    assert len(at.get("plotly_chart")) >= 2


def test_upload_a_features_file():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    buffer = io.BytesIO()
    features = np.eye(3, 5)[labels] + 0.1 * rng.standard_normal((60, 5))
    np.savez(buffer, **{"features.penultimate": features, "labels": labels})
    at = _app().run()
    at.segmented_control(key="source_mode").set_value("Upload").run()
    at.file_uploader(key="upload_checkpoints").set_value(
        [("feats.npz", buffer.getvalue(), "application/octet-stream")]
    ).run()
    # features files carry everything: the form asks for no architecture and no dataset
    assert not [w for w in at.selectbox if w.key in ("arch", "builtin_data")]
    assert any("no model or dataset is read" in c.value for c in at.caption)
    at.button(key="analyse_upload").click().run()
    _assert_clean(at, "features upload")
    _visit(at, "overview")
    assert "NC1 · nc1" in {m.label for m in at.metric}


def _one_line_error(at: AppTest) -> str:
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.error) == 1
    message = at.error[0].value
    assert "Traceback" not in message and "\n" not in message
    return message


def test_random_bytes_upload_shows_one_line_error():
    at = _upload(
        _app().run(),
        [("junk.pt", np.random.default_rng(1).bytes(3000), "application/octet-stream")],
    )
    assert "not a readable PyTorch checkpoint" in _one_line_error(at)


def test_wrong_architecture_lists_the_key_problems():
    at = _upload(
        _app().run(),
        [("final.safetensors", _checkpoint_bytes(), "application/octet-stream")],
        kwargs={**MLP, "widths": [64]},
    )
    message = _one_line_error(at)
    assert "does not match the chosen architecture" in message and "unexpected" in message


class _Hostile:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "pwned"))


def test_hostile_pickle_upload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "marker"
    buffer = io.BytesIO()
    torch.save({"state_dict": {}, "x": _Hostile(str(marker))}, buffer)
    at = _upload(_app().run(), [("evil.pt", buffer.getvalue(), "application/octet-stream")])
    assert "refused for safety" in _one_line_error(at)
    assert not marker.exists()


def test_no_files_and_bad_json_are_reported():
    at = _app().run()
    at.segmented_control(key="source_mode").set_value("Upload").run()
    at.button(key="analyse_upload").click().run()
    assert "upload at least one checkpoint" in _one_line_error(at)
    at.text_area(key="kwargs_mlp").set_value("{oops").run()
    at.file_uploader(key="upload_checkpoints").set_value(
        [("a.safetensors", _checkpoint_bytes(), "application/octet-stream")]
    ).run()
    at.button(key="analyse_upload").click().run()
    assert "not valid JSON" in _one_line_error(at)


def test_layers_are_listed_and_a_subset_analysed():
    at = _app().run()
    at.segmented_control(key="source_mode").set_value("Upload").run()
    at.button(key="list_layers").click().run()
    _assert_clean(at, "list layers")
    picker = at.multiselect(key="layers_chosen")
    assert picker.value == ["blocks.0", "blocks.1", "classifier:input"]
    assert any(option.startswith("blocks.0.0") for option in picker.options)
    picker.set_value(["classifier:input"]).run()
    at.file_uploader(key="upload_checkpoints").set_value(
        [("final.safetensors", _checkpoint_bytes(), "application/octet-stream")]
    ).run()
    at.button(key="analyse_upload").click().run()
    _assert_clean(at, "subset analysis")
    assert at.session_state["request"].layers == ("classifier:input",)
    assert any("1 layer(s)" in s.value for s in at.success)


def test_upload_a_dataset_file(tmp_path):
    from ncviz.load import load_dataset

    data = load_dataset("builtin:digits?split=test")
    buffer = io.BytesIO()
    np.savez(buffer, inputs=data.inputs.numpy(), labels=data.labels.numpy())
    at = _app().run()
    at.segmented_control(key="source_mode").set_value("Upload").run()
    at.radio(key="data_choice").set_value("Upload a dataset").run()
    at.file_uploader(key="upload_data").set_value(
        [("digits-test.npz", buffer.getvalue(), "application/octet-stream")]
    ).run()
    at.file_uploader(key="upload_checkpoints").set_value(
        [("final.safetensors", _checkpoint_bytes(), "application/octet-stream")]
    ).run()
    at.button(key="analyse_upload").click().run()
    _assert_clean(at, "dataset upload")
    _visit(at, "imbalance")
    _assert_clean(at, "imbalance after dataset upload")
    assert at.dataframe[0].value["n_c (analysed: digits-test)"].sum() == 397


def test_a_shared_link_reopens_its_run_checkpoint_and_layer():
    at = _app()
    at.query_params.update(run="digits-mlp-imbalanced", step="10", layer="blocks.1")
    at.switch_page("views/angles.py").run()
    _assert_clean(at, "deep link")
    assert at.session_state["request"].label == "digits-mlp-imbalanced"
    assert at.session_state["checkpoint"] == "epoch_0010.safetensors"
    assert at.session_state["layer"] == "blocks.1"
    assert at.selectbox(key="w_layer").value == "blocks.1"
    assert dict(at.query_params) == {
        "run": "digits-mlp-imbalanced",
        "step": "10",
        "layer": "blocks.1",
    }
    at.selectbox(key="w_layer").set_value("classifier:input").run()
    assert at.query_params["layer"] == "classifier:input"  # the address follows the view

    stale = _app()
    stale.query_params.update(run="my-upload", step="3")
    stale.switch_page("views/overview.py").run()
    assert any("not available here" in w.value for w in stale.warning)
    assert stale.session_state["request"].label == "digits-mlp"


def test_train_vs_test_on_the_overview_and_the_training_curves():
    at = _visit(_app().run(), "overview")
    at.toggle(key="train_vs_test").set_value(True).run()
    _assert_clean(at, "train vs test")
    frame = at.dataframe[0].value
    assert list(frame.columns) == ["train", "test"]
    # Hui et al. 2022: the held-out digits collapse far less than the training digits
    assert frame.loc["nc1", "test"] > 10 * frame.loc["nc1", "train"]
    assert frame.loc["accuracy", "train"] == 1.0 > frame.loc["accuracy", "test"] > 0.9
    assert any(m.label == "NC1 on test data" for m in at.metric)
    _visit(at, "training")
    at.toggle(key="train_overlay_test").set_value(True).run()
    _assert_clean(at, "training overlay")
    curves = json.loads(at.get("plotly_chart")[1].proto.spec)["data"]
    assert [c["name"] for c in curves] == ["train", "test"]


def test_geometry_plays_the_run_over_its_checkpoints():
    at = _visit(_app().run(), "geometry")
    at.toggle(key="geometry_animate").set_value(True).run()
    _assert_clean(at, "geometry animation")
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert len(spec["frames"]) == 25 and spec["frames"][-1]["name"] == "epoch 600"


def test_embedding_of_a_regression_run_is_coloured_by_the_chosen_target():
    from ncviz.load import load_dataset

    at = _app().run()
    at.selectbox(key="bundled_run").set_value("digits-regression").run()
    _visit(at, "embedding")
    at.selectbox(key="emb_target").set_value(2).run()
    _assert_clean(at, "embedding, target 3")
    trace = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]
    targets = load_dataset("builtin:digits?target=pca:3").targets[:, 2].double().numpy()
    colours = trace["marker"]["color"]
    if isinstance(colours, dict):  # plotly's typed-array encoding
        import base64

        colours = np.frombuffer(base64.b64decode(colours["bdata"]), dtype=colours["dtype"])
    assert trace["marker"]["colorbar"]["title"]["text"] == "target 3"
    np.testing.assert_allclose(colours, targets)


def test_overview_shows_the_nrc_headline_on_a_regression_run():
    at = _app().run()
    at.selectbox(key="bundled_run").set_value("digits-regression").run()
    _visit(at, "overview")
    _assert_clean(at, "regression overview")
    assert {"NRC1 · nrc1", "NRC2 · nrc2", "NRC3 · nrc3"} <= {m.label for m in at.metric}


def test_imbalance_page_shows_training_counts_and_reference_levels():
    at = _app().run()
    at.selectbox(key="bundled_run").set_value("digits-mlp-imbalanced").run()
    _visit(at, "imbalance")
    _assert_clean(at, "imbalance")
    table = at.dataframe[0].value.set_index("class")
    from ncviz.load import load_dataset
    from ncviz.load.runs import open_run

    trained_on = open_run(ROOT / "checkpoints" / "digits-mlp-imbalanced").raw["train_data"]
    counts = torch.bincount(load_dataset(trained_on).labels).tolist()
    assert table["n_c (trained on)"].tolist() == counts  # step:5:50: 135 × 5, then 2 × 5
    assert table.loc["9", "n_c (trained on)"] * 10 < table.loc["9", "n_c (analysed: train)"]
    curve = json.loads(at.get("plotly_chart")[0].proto.spec)
    lines = {a["text"] for a in curve["layout"]["annotations"]}
    references = {s.get("name") for s in curve["layout"]["shapes"] if s.get("showlegend")}
    assert references == {"ETF −1/(C−1) = -0.111", "total collapse 1"}  # in the legend
    drops = [text for text in lines if "lr ×0.1" in text]  # the run's learning-rate drops
    assert len(drops) == 1  # written once, with every epoch it marks
    sweep = json.loads(at.get("plotly_chart")[-1].proto.spec)
    assert "against R" in sweep["layout"]["title"]["text"]
    ratios, minority_cos = sweep["data"][0]["x"], sweep["data"][0]["y"]
    assert ratios == [1.0, 10.0, 50.0, 100.0]  # R1, R10, the 25-checkpoint run (R = 50), R100
    assert minority_cos[-1] > minority_cos[0] + 0.3  # minority collapse grows with R
    at.switch_page("views/source.py").run()  # a balanced run: no empty minority charts
    at.selectbox(key="bundled_run").set_value("digits-mlp").run()
    _visit(at, "imbalance")
    assert not at.get("plotly_chart") and any("no minority collapse" in c.value for c in at.caption)


def test_environments_page_shows_groups_of_the_environment_runs():
    at = _app().run()
    at.selectbox(key="bundled_run").set_value("digits-env-aligned").run()
    _visit(at, "environments")
    _assert_clean(at, "environments")
    assert len(at.get("plotly_chart")) == 4
    assert any("best fit" in c.value for c in at.caption)
    at.selectbox(key="env_metric").set_value("prototype_distance").run()
    _assert_clean(at, "environments/prototype_distance")
    at.segmented_control(key="env_etf").set_value("the classifier rows W").run()
    _assert_clean(at, "environments/against W")
    assert any("the classifier rows W)" in c.value for c in at.caption)
    at.switch_page("views/source.py").run()
    at.selectbox(key="bundled_run").set_value("digits-mlp").run()
    _visit(at, "environments")
    assert any("no groups" in i.value for i in at.info)


def test_compare_with_another_run():
    at = _app().run()
    _visit(at, "compare")
    at.segmented_control(key="compare_mode").set_value("Another run").run()
    _assert_clean(at, "compare runs")
    assert at.selectbox(key="compare_with").options[0] == "digits-mlp-imbalanced"
    # the curve over training and the two runs' Gram matrices side by side
    assert len(at.get("plotly_chart")) == 3 and len(at.dataframe) == 1


def test_compare_puts_a_deq_beside_its_explicit_twin():
    at = _app().run()
    at.selectbox(key="bundled_run").set_value("digits-deq-R50").run()
    _visit(at, "compare")
    at.segmented_control(key="compare_mode").set_value("Another run").run()
    _assert_clean(at, "compare deq")
    assert at.selectbox(key="compare_with").options[0] == "digits-mlp-tanh-R50"
    table = at.dataframe[0].value
    shown = set(table["metric"])
    assert {
        "nc1",
        "nc2_etf_distance",
        "nc3",
        "minority_cos",
        "accuracy_minority",
        "accuracy_majority",
    } <= shown
    row = table[table["metric"] == "minority_cos"].iloc[0]
    assert row["digits-deq-R50"] < row["digits-mlp-tanh-R50"]
    at.segmented_control(key="compare_gram").set_value("cos_means").run()
    _assert_clean(at, "compare deq gram")
    assert len(at.get("plotly_chart")) == 3


def test_imbalance_tab_measures_ncmc_and_finds_sub_clusters_on_request():
    """Issue 22 §4: a run trained to fixed centres shows NCMC's collapse to each class's
    centre-mean (equal to ncmc_at on the same checkpoint) and the run's note that the paper's
    direction does not appear on digits; the k-means sub-cluster view is its own section."""
    from ncviz.analysis import analyze, ncmc_at

    at = _app().run()
    at.selectbox(key="bundled_run").set_value("digits-longtail-ncmc").run()
    _visit(at, "imbalance")
    _assert_clean(at, "imbalance")
    cards = {m.label: m.value for m in at.metric}
    assert {"ncmc_nc_ave", "ncmc_nc_std", "ncmc_alignment", "ncmc_centres"} <= set(cards)
    analysis = analyze(ROOT / "checkpoints" / "digits-longtail-ncmc", layers=["classifier:input"])
    checkpoint = at.select_slider(key="w_checkpoint").value
    expected = ncmc_at(analysis, checkpoint, "classifier:input").metrics["ncmc_nc_ave"]
    assert float(cards["ncmc_nc_ave"]) == pytest.approx(expected, rel=1e-3)
    assert any("does not appear on digits" in c.value for c in at.caption)
    assert not at.toggle(key="mc_given").value  # sub-clusters by k-means unless asked
    at.button(key="mc_run").click().run()
    _assert_clean(at, "sub-clusters")
    assert {"subcluster_nc_ave", "subcluster_count"} <= {m.label for m in at.metric}
    frames = [d.value for d in at.dataframe if "nc (to nearest sub-cluster)" in d.value.columns]
    assert frames and list(frames[-1]["n_c"]) == sorted(frames[-1]["n_c"], reverse=True)


def test_compare_an_upload_with_an_earlier_analysis_of_the_session():
    at = _upload(
        _app().run(), [("final.safetensors", _checkpoint_bytes(), "application/octet-stream")]
    )
    _visit(at, "compare")
    at.segmented_control(key="compare_mode").set_value("Another run").run()
    _assert_clean(at, "compare with the session's demo")
    assert at.selectbox(key="compare_with").options[0] == "digits-mlp (this session)"
    frame = at.dataframe[0].value.set_index("metric")
    assert list(frame.columns) == ["final", "digits-mlp"]
    assert frame.loc["accuracy", "final"] == frame.loc["accuracy", "digits-mlp"] == 1.0


def test_server_folder_browsing_stays_inside(tmp_path, monkeypatch):
    root = tmp_path / "shared"
    (root / "runs").mkdir(parents=True)
    (root / "runs" / "final.safetensors").write_bytes(_checkpoint_bytes())
    (tmp_path / "outside.pt").write_bytes(b"x")
    (root / "link.pt").symlink_to(tmp_path / "outside.pt")
    monkeypatch.setenv("NCVIZ_DATA_DIR", str(root))
    at = _app().run()
    at.segmented_control(key="source_mode").set_value("Server folder").run()
    assert at.selectbox(key="server_entry").options == ["runs/"]  # the escaping link is hidden
    at.button(key="server_open").click().run()
    assert at.selectbox(key="server_entry").value == "runs/final.safetensors"
    at.button(key="analyse_server").click().run()
    _assert_clean(at, "server folder")
    assert any("**final**" in s.value for s in at.success)
    at.selectbox(key="server_data").set_value("a file in the data folder").run()
    at.text_input(key="server_data_path").set_value("../outside.pt").run()
    at.button(key="analyse_server").click().run()
    assert "without '..'" in _one_line_error(at)


def _train_until_done(at: AppTest, charts: int) -> AppTest:
    """Train; the settled run returns once the training job has finished."""
    at.button(key="theory_train").click().run()
    assert not at.get("progress") and len(at.get("plotly_chart")) >= charts
    return at


def test_theory_lab_trains_each_model():
    at = _app().run()
    _visit(at, "theory")
    assert any("press **Train**" in i.value for i in at.info)
    at.number_input(key="t_steps").set_value(600).run()
    _train_until_done(at, 5)
    _assert_clean(at, "deep UFM")
    caption = next(c.value for c in at.caption if "class means of H1…H4 at step 600" in c.value)
    assert "Ranks of the centred" in caption and "deep neural collapse: 9 centred" in caption
    at.segmented_control(key="theory_kind").set_value("UFM").run()
    at.number_input(key="u_steps").set_value(300).run()
    _train_until_done(at, 2)
    _assert_clean(at, "UFM")
    at.segmented_control(key="theory_kind").set_value("Regression UFM").run()
    _train_until_done(at, 3)
    _assert_clean(at, "regression UFM")
    assert any("optimum‖/‖optimum‖" in c.value for c in at.caption)
    at.segmented_control(key="theory_kind").set_value("Deep RFM").run()
    _train_until_done(at, 2)
    _assert_clean(at, "deep RFM")
    assert any("with the AGOP projection vs" in c.value for c in at.caption)


def test_reuploading_other_content_under_the_same_name_is_analysed_afresh():
    """Same file name and size, different labels: the second analysis must not reuse the first."""
    from ncviz.load import load_dataset

    data = load_dataset("builtin:digits?split=test")
    accuracies = []
    at = _app().run()
    at.segmented_control(key="source_mode").set_value("Upload").run()
    at.radio(key="data_choice").set_value("Upload a dataset").run()
    at.file_uploader(key="upload_checkpoints").set_value(
        [("final.safetensors", _checkpoint_bytes(), "application/octet-stream")]
    ).run()
    for labels in (data.labels.numpy(), (data.labels.numpy() + 1) % 10):
        buffer = io.BytesIO()
        np.savez(buffer, inputs=data.inputs.numpy(), labels=labels)
        at.file_uploader(key="upload_data").set_value(
            [("digits-test.npz", buffer.getvalue(), "application/octet-stream")]
        ).run()
        at.button(key="analyse_upload").click().run()
        _assert_clean(at, "dataset re-upload")
        table = at.dataframe[0].value  # the Source page's metrics table
        rows = table[(table["metric"] == "accuracy") & (table["layer"] == "classifier:input")]
        accuracies.append(float(rows["value"].iloc[0]))
    assert accuracies[0] > 0.9 and accuracies[1] < 0.2, accuracies


def test_language_page_shows_buckets_and_token_heatmaps_of_the_bundled_lm():
    at = _app().run()
    at.selectbox(key="bundled_run").set_value("markov-lm").run()
    _visit(at, "language")
    _assert_clean(at, "language")
    assert at.session_state["layer"] == "lm_head:input"
    assert any("token classes kept" in c.value for c in at.caption)
    buckets = at.dataframe[0].value
    assert list(buckets["bucket"]) == ["top 100", "100+"]
    assert buckets["classes"].sum() == 184  # the tokens seen twice or more in corpus.npy
    assert len(at.get("plotly_chart")) == 4 + 1 + 2  # curves, buckets, two heatmaps
    at.text_input(key="bucket_edges").set_value("10, 50").run()
    assert list(at.dataframe[0].value["bucket"]) == ["top 10", "10–50", "50+"]
    at.slider(key="top_k").set_value(12).run()
    _assert_clean(at, "language, top 12")
    run = ROOT / "checkpoints" / "markov-lm"
    next_tokens = np.load(run / "corpus.npy").astype(np.int64).reshape(-1, 32)[:, 1:].ravel()
    top = np.argsort(-np.bincount(next_tokens), kind="stable")[:12]
    words = (run / "vocab.txt").read_text().split()
    heatmap = json.loads(at.get("plotly_chart")[-2].proto.spec)["data"][0]
    assert heatmap["x"] == [words[i] for i in top]  # the 12 most frequent next tokens


def test_the_lm_overview_explains_nc1_and_the_etf_floor_and_geometry_is_bounded():
    """184 token classes in d = 64: the Overview says why NC1 is absent and where the ETF
    distance's floor lies; Geometry draws the 20 most frequent classes, the slider more."""
    at = _app().run()
    at.selectbox(key="bundled_run").set_value("markov-lm").run()
    _visit(at, "overview")
    _assert_clean(at, "lm overview")
    notes = " ".join(i.value for i in at.info)
    assert "C − 1 = 183 > d = 64" in notes and "floor" in notes
    assert "worse than chance" in notes and "equinorm" in notes  # markov-lm: 0.28 vs 0.09
    assert any("floor 0.904" in c.value for c in at.caption)
    _visit(at, "geometry")
    _assert_clean(at, "lm geometry")
    title = json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["title"]["text"]
    assert "20 most frequent of 184 classes" in title
    at.slider(key="geometry_classes").set_value(40).run()
    _assert_clean(at, "lm geometry, 40 classes")
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert "40 most frequent" in spec["layout"]["title"]["text"]
    spokes = [t for t in spec["data"] if t.get("legendgroup") == "means"]
    assert len(spokes) == 40 and all("text" not in t["mode"] for t in spokes)  # names on hover


def test_feature_learning_page_computes_the_agop_on_request():
    at = _visit(_app().run(), "feature_learning")
    _assert_clean(at, "feature learning")
    assert not at.get("plotly_chart")
    at.button[0].click().run()  # "Compute AGOP, NFA and geometric complexity": a new job
    _assert_clean(at, "feature learning computed")
    assert len(at.get("plotly_chart")) == 4  # NFA and GC over training, stages, AGOP
    assert at.selectbox(key="agop_layer").value == "classifier:input"
    caption = next(c.value for c in at.caption if "NFA correlation" in c.value)
    # the head: J = W, so AGOP = WᵀW; its equal singular values (collapse) make AGOP^½ ∝ WᵀW
    assert "corr(WᵀW, AGOP) = 1.000" in caption and "AGOP^½) = 1.000" in caption
    at.selectbox(key="agop_layer").set_value("blocks.0.0:input").run()
    _assert_clean(at, "feature learning, first layer")


def test_transfer_page_shows_gc_against_transfer_across_the_sweep():
    at = _visit(_app().run(), "transfer")
    _assert_clean(at, "transfer")
    rho = at.dataframe[0].value.set_index("metric")["rho"]
    assert rho["target_cdnv"] > 0 and rho["shot5_acc"] < 0  # the paper's directions
    assert len(at.get("plotly_chart")) == 3
    assert any("Munn, Dherin & Gonzalvo 2024" in c.value for c in at.caption)
    at.segmented_control(key="transfer_source").set_value("Upload a table").run()
    table = "model,source_gc,shot5_acc\na,1,0.9\nb,2,0.8\nc,3,0.7\n"
    at.file_uploader(key="transfer_upload").set_value(
        [("mine.csv", table.encode(), "text/csv")]
    ).run()
    _assert_clean(at, "transfer upload")
    assert at.dataframe[0].value.set_index("metric").loc["shot5_acc", "rho"] == -1.0


def test_study_page_shows_the_authors_correlations():
    at = _visit(_app().run(), "study")
    _assert_clean(at, "study")
    assert at.text_area[0].value == "agreement=hits/(hits+misses)"
    assert at.selectbox(key="study_target").value == "val_loss"
    table = at.dataframe[0].value.set_index("metric")
    assert round(table.loc["agreement", "rho"], 2) == -0.96 and table.loc["cdnv", "n"] == 230
    assert any("Wu & Papyan 2024" in c.value for c in at.caption)
    at.selectbox(key="study_target").set_value("val_acc").run()
    _assert_clean(at, "study, other target")
    assert round(at.dataframe[0].value.set_index("metric").loc["cdnv", "rho"], 2) == -0.94
    at.text_area[0].set_value("bad = hits.__class__").run()
    assert len(at.error) == 1 and "only numbers" in at.error[0].value


def test_study_uploads_do_not_inherit_the_bundled_table_s_formula():
    at = _visit(_app().run(), "study")
    assert at.text_area[0].value == "agreement=hits/(hits+misses)"
    at.radio(key="study_source").set_value("Upload tables").run()
    table = (
        "run,cdnv,nc1,val_loss\nr1,0.5,2.0,3.1\nr2,0.4,1.5,3.0\nr3,0.3,1.0,2.9\nr4,0.2,0.9,2.5\n"
    )
    at.file_uploader(key="study_upload").set_value([("mine.csv", table.encode(), "text/csv")])
    at.run()
    _assert_clean(at, "study upload without hits")
    assert at.text_area[0].value == ""  # no formula left over from the bundled table
    assert set(at.dataframe[0].value["metric"]) >= {"cdnv", "nc1"}


def test_angles_offer_each_full_matrix_as_a_download():
    at = _app().run()
    _visit(at, "angles")
    _assert_clean(at, "angles")
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == [
        f"{name}: the full 10 × 10 matrix (CSV)"
        for name in ("Class means", "Classifier rows", "Rows vs means")
    ]


def test_runs_of_the_log_folder_are_listed_opened_and_linked(tmp_path, monkeypatch):
    """`ncviz serve LOGDIR`: every run under the folder (recursively) is listed, opens as it
    describes itself, and its views' links name it by its path in the folder."""
    import shutil

    from ncviz.load.server_folder import find_runs

    logs = tmp_path / "logs"
    shutil.copytree(ROOT / "checkpoints" / "digits-mlp", logs / "sweep" / "mlp")
    shutil.copytree(ROOT / "checkpoints" / "digits-cnn", logs / "cnn")
    (logs / "notes").mkdir()  # not a run
    monkeypatch.setenv("NCVIZ_DATA_DIR", str(logs))
    assert find_runs(logs) == ["cnn", "sweep/mlp"]

    at = _app()
    at.query_params.update(run="sweep/mlp", layer="blocks.1")
    at.switch_page("views/training.py").run()
    _assert_clean(at, "log-folder link")
    request = at.session_state["request"]
    assert request.source == str((logs / "sweep" / "mlp").resolve()) and request.model is None
    assert at.selectbox(key="w_layer").value == "blocks.1" and len(at.get("plotly_chart")) >= 2
    assert at.query_params["run"] == "sweep/mlp"  # the address reopens it

    at.switch_page("views/source.py").run()  # the Source page shows the log folder's runs
    assert at.segmented_control(key="source_mode").value == "Server folder"
    assert at.selectbox(key="log_run").options == ["cnn", "sweep/mlp"]
    at.selectbox(key="log_run").set_value("cnn").run()
    at.button(key="open_log_run").click().run()
    _assert_clean(at, "log-folder open")
    assert at.session_state["request"].label == "cnn"
    _visit(at, "overview")
    assert at.query_params["run"] == "cnn"

    outside = _app()  # a path out of the folder is no run of it
    outside.query_params.update(run="../logs/cnn")
    outside.switch_page("views/overview.py").run()
    assert any("not available here" in w.value for w in outside.warning)


def test_several_runs_are_overlaid_on_training_and_stacked_on_study(tmp_path, monkeypatch):
    """TensorBoard's habit: other runs of the log folder picked on Training draw one metric's
    curves beside this run's (legend = run), the choice in the URL; Study takes the same choice
    as one row per run (last checkpoint's metrics and the final values of the runs' logs)."""
    import shutil

    from ncviz.analysis import analyze

    logs = tmp_path / "logs"
    heads = {f"longtail/{h}": f"digits-longtail-{h}" for h in ("etf", "learned", "ncmc")}
    sweep = {f"sweep/R{r}": f"digits-mlp-imbalanced-R{r}" for r in (1, 10, 100)}
    for name, bundled in {**heads, **sweep}.items():
        shutil.copytree(ROOT / "checkpoints" / bundled, logs / name)
    monkeypatch.setenv("NCVIZ_DATA_DIR", str(logs))

    at = _app()
    at.query_params.update(run="longtail/etf", runs=["longtail/learned", "longtail/ncmc", "gone"])
    at.switch_page("views/training.py").run()
    _assert_clean(at, "overlay")
    picker = at.multiselect(key="w_picked_runs")
    assert "longtail/etf" not in picker.options and "sweep/R10" in picker.options
    assert picker.value == ["longtail/learned", "longtail/ncmc"]  # the link's, "gone" dropped
    assert at.query_params["runs"] == ["longtail/learned", "longtail/ncmc"]
    figure = json.loads(at.get("plotly_chart")[-1].proto.spec)
    traces = {trace["name"]: trace for trace in figure["data"]}
    assert list(traces) == list(heads)
    layer = at.selectbox(key="w_layer").value
    metric = at.selectbox(key="train_runs_metric").value
    for name in heads:  # each curve is that run's own analysis, computed here independently
        table = analyze(logs / name).table
        rows = table[(table["metric"] == metric) & (table["layer"] == layer)]
        np.testing.assert_allclose(_plotted(traces[name]["y"]), rows.sort_values("epoch")["value"])

    at.multiselect(key="w_picked_runs").unselect("longtail/ncmc").run()
    assert at.query_params["runs"] == "longtail/learned"
    assert len(json.loads(at.get("plotly_chart")[-1].proto.spec)["data"]) == 2

    (logs / "broken").mkdir()
    (logs / "broken" / "run.json").write_text("{not json")  # a run whose analysis fails
    study = _app()
    study.query_params.update(runs=[*sweep, "broken"])
    study.switch_page("views/study.py").run()
    assert not study.exception
    assert [e.value for e in study.error] == [
        "Analysis of broken failed: broken/run.json is not valid JSON "
        "(Expecting property name enclosed in double quotes: line 1 column 2 (char 1))."
    ]  # one line for the run that failed; the others are studied
    assert study.radio(key="study_source").value == "Runs of this server"  # the link's runs
    assert study.multiselect(key="w_picked_runs").value == [*sweep, "broken"]
    assert any(s.value.startswith("3 runs: Spearman") for s in study.subheader)
    rows = {row["metric"] for row in study.dataframe[0].value.to_dict("records")}
    assert {"nc1", "minority_cos"} <= rows


def test_ranks_on_spectra_and_in_the_theory_lab_share_one_labelled_convention():
    """Issue 22 §5: Spectra counts the rank of the centred means M or of the uncentred means,
    labelled, switchable, and the Theory lab shows the same choice."""
    at = _app().run()
    _visit(at, "spectra")
    _assert_clean(at, "spectra")
    cards = {m.label: m.value for m in at.metric}
    assert "numerical rank of M (centred)" in cards and cards["classes − 1"] == "9"
    at.segmented_control(key="w_means_centring").set_value("uncentred").run()
    _assert_clean(at, "spectra, uncentred")
    cards = {m.label: m.value for m in at.metric}
    analysis = default_runner().get(at.session_state["job_key"]).result
    result = analysis.results[(at.session_state["checkpoint"], at.session_state["layer"])]
    s = np.linalg.svd(result.arrays["class_means"], compute_uv=False)  # numpy, τ = 0.01
    assert cards["numerical rank of [μ_c] (uncentred)"] == str((s > 1e-2 * s[0]).sum())
    assert cards["classes"] == "10"
    _visit(at, "theory")
    assert at.segmented_control(key="w_means_centring").value == "uncentred"


def test_study_and_export_take_a_papers_convention_from_the_url(tmp_path, monkeypatch):
    """Issue 22: a dashboard selector (in the URL) puts the runs' statistics in a paper's
    conventions; under lc2024 the runs of this server sit beside the authors' 230 runs, with
    the same columns, each value the run's own lc2024 analysis."""
    import shutil

    import pandas as pd

    from ncviz.analysis import analyze
    from ncviz.server.jobs import default_runner
    from ncviz.study import LINGUISTIC_COLLAPSE_TABLE

    logs = tmp_path / "logs"
    sweep = {f"sweep/R{r}": f"digits-mlp-imbalanced-R{r}" for r in (1, 10, 100)}
    for name, bundled in sweep.items():
        shutil.copytree(ROOT / "checkpoints" / bundled, logs / name)
    monkeypatch.setenv("NCVIZ_DATA_DIR", str(logs))

    study = _app()
    study.query_params.update(runs=list(sweep), convention="lc2024")
    study.switch_page("views/study.py").run()
    _assert_clean(study, "study lc2024")
    assert study.selectbox(key="w_convention").value == "lc2024"
    rows = {row["metric"] for row in study.dataframe[0].value.to_dict("records")}
    assert {"etf_error", "interfere_var", "log_kern_mean", "hits"} <= rows and "nc1" not in rows
    study.checkbox(key="study_beside_lc").check().run()
    _assert_clean(study, "beside the authors")
    authors = pd.read_csv(LINGUISTIC_COLLAPSE_TABLE)
    assert any(s.value.startswith(f"{len(authors) + 3} runs") for s in study.subheader)
    # the page's own analysis of a run (its lc2024 job; earlier tests may have left ncviz
    # ones under the same label) is that run's lc2024 analysis, computed here again
    shown = next(
        job.result
        for job in default_runner().jobs()
        if job.label == "sweep/R10" and job.status == "done" and job.result.convention == "lc2024"
    )
    mine = analyze(logs / "sweep/R10", convention="lc2024")
    assert mine.convention == "lc2024"
    where = (mine.checkpoints[-1], mine.layers[-1])
    assert shown.metrics_at(*where) == pytest.approx(mine.metrics_at(*where), rel=1e-12)

    study.selectbox(key="w_convention").set_value("ncviz").run()
    assert "convention" not in study.query_params  # ncviz's is the default: no parameter

    odd = _app()
    odd.query_params.update(convention="lc2025")
    odd.switch_page("views/export.py").run()
    assert not odd.exception
    assert [w.value for w in odd.warning] == [
        "The link asks for the convention 'lc2025', which ncviz does not know; showing "
        "ncviz's (valid: ncviz, papyan2020, lc2024, rfm2024, nrc2024, ncmc2024, dufm2024)."
    ]
    odd.selectbox(key="w_convention").set_value("rfm2024").run()
    _assert_clean(odd, "export rfm2024")
    exported = next(job.result for job in default_runner().jobs() if "(rfm2024)" in job.label)
    assert exported.convention == "rfm2024"
    assert set(exported.tidy()["metric"]) == {"nc1", "nc2"}
    assert odd.query_params["convention"] == "rfm2024"
    labels = [button.proto.label for button in odd.get("download_button")]
    assert "Metrics table (CSV, rfm2024)" in labels

    # a regression convention on this classification run: one line, and ncviz's table stays
    odd.selectbox(key="w_convention").set_value("nrc2024").run()
    assert not odd.exception
    assert [e.value for e in odd.error] == [
        "nrc2024 rows failed: the 'nrc2024' convention is for regression (targets); a "
        "classification run takes one of ncviz, papyan2020, lc2024, rfm2024, ncmc2024, dufm2024."
    ]
    labels = [button.proto.label for button in odd.get("download_button")]
    assert "Metrics table (CSV, ncviz)" in labels
