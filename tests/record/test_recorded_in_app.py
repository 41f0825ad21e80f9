"""The bundled example records a custom CNN; every dashboard page opens its zipped run."""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import pytest

from ncviz.analysis import analyze
from tests.app.test_pages import CLASSIFICATION_PAGES, COMMON_PAGES, _app, _assert_clean, _visit

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def example_run(tmp_path_factory):
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import record_custom_model
    finally:
        sys.path.pop(0)
    folder = tmp_path_factory.mktemp("example") / "custom-cnn"
    record_custom_model.main(["--out", str(folder), "--epochs", "12"])
    return folder


def zipped(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.iterdir()):
            archive.write(path, f"{folder.name}/{path.name}")
    return buffer.getvalue()


def test_example_run_analyses_with_train_and_test(example_run):
    analysis = analyze(example_run)
    assert analysis.layers == ["features.conv_b", "neck", "logits:input"]
    assert analysis.splits == ["train", "test"]
    train_acc = analysis.metrics_at(analysis.checkpoints[-1], "logits:input")["accuracy"]
    assert train_acc > 0.95  # the example trains for real
    nc1 = [analysis.metrics_at(c, "logits:input")["nc1"] for c in analysis.checkpoints]
    assert nc1[-1] < nc1[0] / 2  # and its features collapse
    assert analysis.events and analysis.log["train_acc"][-1] > 0.95


def test_every_page_opens_the_uploaded_recorded_run(example_run):
    at = _app().run()
    at.segmented_control(key="source_mode").set_value("Upload").run()
    upload = [("custom-cnn.zip", zipped(example_run), "application/zip")]
    at.file_uploader(key="upload_checkpoints").set_value(upload).run()
    assert any("zipped recorded run" in c.value for c in at.caption)
    assert not [w for w in at.button if w.key == "list_layers"]  # its layers are recorded
    at.button(key="analyse_upload").click().run()
    _assert_clean(at, "upload recorded run")
    assert any("**custom-cnn**" in s.value for s in at.success)
    assert at.selectbox(key="w_split").options == ["train", "test"]
    for page in [*CLASSIFICATION_PAGES, *COMMON_PAGES]:
        _visit(at, page)
        _assert_clean(at, f"recorded/{page}")
        charts = len(at.get("plotly_chart"))
        # one run; recorded without AGOP; a classification run's token views only when asked
        empty = page in ("compare", "feature_learning", "language")
        assert charts >= CLASSIFICATION_PAGES.get(page, 0 if empty else 1), page
    _visit(at, "training")
    assert len(at.get("plotly_chart")) >= 3  # the log's accuracy + metric curves
    _visit(at, "overview")
    train = {m.label: m.value for m in at.metric}["Accuracy · accuracy"]
    at.selectbox(key="w_split").set_value("test").run()
    _assert_clean(at, "test split")
    test = {m.label: m.value for m in at.metric}["Accuracy · accuracy"]
    assert float(train) > 0.95 and float(test) != float(train)


def test_a_zip_with_links_or_parent_paths_is_refused():
    at = _app().run()
    at.segmented_control(key="source_mode").set_value("Upload").run()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../run.json", "{}")
    upload = [("evil.zip", buffer.getvalue(), "application/zip")]
    at.file_uploader(key="upload_checkpoints").set_value(upload).run()
    at.button(key="analyse_upload").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "'..'" in at.error[0].value
    assert "/tmp" not in at.error[0].value


def test_several_uploaded_features_files_make_a_run():
    import numpy as np

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    files = []
    for epoch in (1, 4, 9):
        buffer = io.BytesIO()
        features = epoch * np.eye(3, 5)[labels] + rng.standard_normal((60, 5))
        np.savez(buffer, **{"features.penultimate": features, "labels": labels})
        files.append((f"feats_epoch_{epoch}.npz", buffer.getvalue(), "application/octet-stream"))
    at = _app().run()
    at.segmented_control(key="source_mode").set_value("Upload").run()
    at.file_uploader(key="upload_checkpoints").set_value(files).run()
    at.button(key="analyse_upload").click().run()
    _assert_clean(at, "features run upload")
    success = " ".join(s.value for s in at.success)
    assert "3 checkpoint(s)" in success and "/tmp" not in success
    _visit(at, "training")
    _assert_clean(at, "features run training")
    assert len(at.get("plotly_chart")) >= 1
