"""The real dashboard in a real browser: Debian's chromium driven by Playwright.

Starts ``streamlit run`` on 127.0.0.1, uploads a checkpoint through the file uploader, waits for
the analysis, visits every page, checks that plotly charts rendered and that no error or exception
is shown, saves a screenshot of each page under ``test-artifacts/``, and stops the server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from ncviz.load import load_dataset
from ncviz.server.launch import streamlit_command
from tests.serving import free_port, wait_until_healthy

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
PAGES = [
    "Overview",
    "Geometry",
    "Angles",
    "Spectra",
    "Depth",
    "Training",
    "Imbalance",
    "Regression",
    "Language",
    "Embedding",
    "Feature learning",
    "Transfer",
    "Theory lab",
    "Compare",
    "Export",
    "Study",
]

# the label of the dataset uploader, shown once "Upload a dataset" is chosen on the Source page
DATASET_UPLOADER = "Dataset (inputs + labels/targets"

# the Language page's toggle that shows the token views of a classification run
TOKEN_VIEWS = "Show the token views for its classes anyway"

# pages that draw charts for a single uploaded checkpoint (Training needs several)
CHART_PAGES = {
    "Geometry",
    "Angles",
    "Spectra",
    "Depth",
    "Embedding",
    "Compare",
    "Study",
    "Language",
    "Transfer",
}

# Waits are on the page's state; the bound only stops a hung test. On a loaded machine a page may
# take minutes, and that must make the test slower, never red.
WAIT_MS = int(os.environ.get("NCVIZ_TEST_WAIT_MS", "600000"))
# how long an action may go unanswered before it is repeated (never a reason to fail)
RETRY_MS = 30000

playwright_api = pytest.importorskip("playwright.sync_api")
# every browser test module's marks: skipped without chromium, slow
BROWSER_MARKS = [
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed"),
    pytest.mark.slow,
]
pytestmark = BROWSER_MARKS


@contextlib.contextmanager
def running_server(tmp_path_factory, **env: str):
    """``streamlit run app/main.py`` on 127.0.0.1 with ``env`` added; yields (url, process) once
    the health route answers, and stops the server (its log kept in test-artifacts/)."""
    port = free_port()
    env = {**os.environ, "NCVIZ_CACHE_DIR": str(tmp_path_factory.mktemp("cache")), **env}
    # the server's output goes to a file: a pipe nobody reads fills up (64 KB of warnings from
    # its workers) and then blocks the server mid-test
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        streamlit_command(port),  # the command ncviz serve and make run use
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    if not wait_until_healthy(url):
        process.kill()
        pytest.fail("streamlit did not become healthy")
    try:
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copyfile(log_path, ARTIFACTS / f"server-{port}.log")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory) as (url, _):
        yield url


def _assert_no_errors(page, where: str) -> None:
    assert page.locator("[data-testid='stException']").count() == 0, where
    errors = page.locator("[data-testid='stAlertContentError']")
    assert errors.count() == 0, f"{where}: {errors.all_inner_texts()}"
    assert "Traceback" not in page.inner_text("body"), where


def _wait_idle(page) -> None:
    """Until Streamlit has no script run pending or running. The app root carries the script
    state, which the front end sets to "rerunRequested" the moment a widget changes, so a rerun
    that has not started yet is waited for too (a status widget appears only later)."""
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"stApp\"]')"
        "?.getAttribute('data-test-script-state') === 'notRunning'",
        timeout=WAIT_MS,
    )


@contextlib.contextmanager
def _screenshot_on_failure(name: str, *pages):
    """On any failure inside, save each page's screenshot (test-artifacts/failed-*.png)."""
    try:
        yield
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        for index, page in enumerate(pages):
            with contextlib.suppress(Exception):
                page.screenshot(path=str(ARTIFACTS / f"failed-{name}-{index}.png"), full_page=True)
        raise


def _upload(page, index: int, path) -> None:
    """Put ``path`` into the ``index``-th file uploader and wait until its bytes have reached the
    server and the upload's rerun is done. The file's chip shows at once, while a large file is
    still being sent: an Analyse click before the server has it runs with no file, and its
    "upload at least one checkpoint" error satisfies the click's wait (then nothing clicks again;
    the error vanishes with the upload's own rerun)."""
    with page.expect_response(
        lambda r: "/_stcore/upload_file/" in r.url and r.request.method == "PUT",
        timeout=WAIT_MS,
    ) as sent:
        page.locator("input[type='file']").nth(index).set_input_files(str(path))
    assert sent.value.ok, f"the upload of {Path(path).name} failed ({sent.value.status})"
    page.locator("[data-testid='stFileChip']").nth(index).wait_for(timeout=WAIT_MS)
    _wait_idle(page)


def _until_shown(page, act, target, what: str) -> None:
    """Do ``act`` until ``target`` shows, then wait for the page to settle.

    Two things can swallow an action on a loaded machine: Streamlit drops a click that lands
    while it is still rerunning for an earlier widget change (a button is True for one script
    run only), and a browser whose websocket timed out reconnects to a fresh session. A server
    that is merely slow is no reason to fail either: the page's script state stays "notRunning"
    until the server answers, so nothing on the page says a click is pending. So ``act`` is
    repeated whenever ``target`` has not shown for a while (repeating is harmless: a radio
    choice is idempotent and a second Analyse joins the running job), until the hang guard."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while True:
        act()
        try:
            target.first.wait_for(timeout=min(RETRY_MS, WAIT_MS))
        except playwright_api.TimeoutError:
            if time.monotonic() < deadline:
                continue
            raise AssertionError(f"{what} never showed") from None
        _wait_idle(page)
        return


def _choose(page, option: str, shows: str, exact: bool = False) -> None:
    """Click the radio option ``option`` until the text ``shows`` (what it reveals) is there."""
    _until_shown(
        page,
        lambda: page.get_by_text(option, exact=True).click(),
        page.get_by_text(shows, exact=exact),
        f"choosing {option!r}: {shows!r}",
    )


def _pick(page, box: str, option: str, shows: str) -> None:
    """Choose ``option`` in the selectbox labelled ``box`` by typing it (its list may open
    beyond the window's edge, e.g. at the foot of a long sidebar) until ``shows`` appears."""

    def act() -> None:
        page.get_by_role("combobox", name=box).click()
        page.keyboard.type(option)
        page.keyboard.press("Enter")

    _until_shown(page, act, page.get_by_text(shows, exact=False), f"picking {option!r}: {shows!r}")


def _upload_checkpoint_and_data(page, checkpoint, data) -> None:
    """On the Source page: Upload mode, the checkpoint, "Upload a dataset", the data file."""
    page.get_by_role("radio", name="Upload").click()
    _wait_idle(page)
    _upload(page, 0, checkpoint)
    _choose(page, "Upload a dataset", DATASET_UPLOADER)
    _upload(page, 1, data)


def _analyse(page, expected: str, errors: bool = True) -> None:
    """Click Analyse until ``expected`` (or, if ``errors``, an error) shows."""
    target = page.get_by_text(expected, exact=False)
    if errors:
        target = target.or_(page.locator("[data-testid='stAlertContentError']"))
    _until_shown(
        page,
        lambda: page.get_by_role("button", name="Analyse").click(),
        target,
        f"Analyse: {expected!r}",
    )


def test_upload_analyse_and_visit_every_page(server, tmp_path):
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir()
    checkpoint = ROOT / "checkpoints" / "digits-mlp" / "epoch_0600.safetensors"
    test_split = load_dataset("builtin:digits?split=test")
    dataset = tmp_path / "digits-test.npz"
    np.savez(dataset, inputs=test_split.inputs.numpy(), labels=test_split.labels.numpy())
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(WAIT_MS)
        page.goto(server)
        page.get_by_text("25 checkpoint(s) × 3 layer(s)", exact=False).wait_for(timeout=WAIT_MS)
        _wait_idle(page)
        _assert_no_errors(page, "home")
        page.screenshot(path=str(ARTIFACTS / "00-source-bundled.png"), full_page=True)

        _upload_checkpoint_and_data(page, checkpoint, dataset)
        _analyse(page, "epoch_0600: 1 checkpoint(s)")
        success = page.get_by_text("epoch_0600: 1 checkpoint(s)", exact=False)
        success.or_(page.locator("[data-testid='stAlertContentError']")).first.wait_for()
        _assert_no_errors(page, "analyse upload")  # an error shows at once, not after a timeout
        _wait_idle(page)
        _assert_no_errors(page, "upload")
        page.screenshot(path=str(ARTIFACTS / "01-source-uploaded.png"), full_page=True)

        for index, name in enumerate(PAGES, start=2):
            page.get_by_role("link", name=name).first.click()
            page.get_by_role("heading", name=name, exact=False).first.wait_for(timeout=WAIT_MS)
            _wait_idle(page)
            if name == "Theory lab":  # train the deep UFM (paper setting) and watch it live
                page.get_by_role("button", name="Train").click()
                page.get_by_text("class means of H1", exact=False).wait_for(timeout=WAIT_MS)
                page.wait_for_function(  # live updates until the progress bar goes away
                    "() => !document.querySelector('[data-testid=\"stProgress\"]')",
                    timeout=WAIT_MS,
                )
                _wait_idle(page)
            if name == "Language":  # a classification upload: the note, charts only when asked
                assert page.locator(".js-plotly-plot").count() == 0
                _until_shown(  # a toggle is clicked only while off: a second click undoes it
                    page,
                    lambda: (
                        page.get_by_role("switch", name=TOKEN_VIEWS).is_checked()
                        or page.get_by_text(TOKEN_VIEWS, exact=True).click()
                    ),
                    page.locator(".js-plotly-plot").first,
                    "the token views of a classification run",
                )
                _wait_idle(page)
            if name in CHART_PAGES | {"Theory lab"}:
                page.locator(".js-plotly-plot").first.wait_for(timeout=WAIT_MS)
                assert page.locator(".js-plotly-plot").count() >= 1, name
            _assert_no_errors(page, name)
            if name == "Overview":  # the uploaded test split, not the bundled training data
                assert "N = 397" in page.inner_text("body")
            if name == "Export":
                assert page.get_by_role("button", name="Metrics table (CSV, ncviz)").count() == 1
            shot = f"{index:02d}-{name.lower().replace(' ', '-')}.png"
            page.screenshot(path=str(ARTIFACTS / shot), full_page=True)
        browser.close()


@pytest.mark.parametrize("run", ["digits-mlp-imbalanced", "digits-regression"])
def test_a_deep_link_opens_its_view_and_every_page_draws(server, run):
    """A link opened in a fresh browser context selects its run, checkpoint and layer; then every
    page of that run is visited and screenshotted (test-artifacts/link-<run>-*.png)."""
    layer = "blocks.1" if run == "digits-mlp-imbalanced" else "classifier:input"
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        page.set_default_timeout(WAIT_MS)
        with _screenshot_on_failure(f"link-{run}", page):
            page.goto(f"{server}/overview?run={run}&step=10&layer={layer}")
            page.get_by_text(f"{run} · epoch 10 · layer", exact=False).wait_for(timeout=WAIT_MS)
            _wait_idle(page)
            sidebar = page.locator("[data-testid='stSidebar']")
            assert f"Run: {run}" in sidebar.inner_text()
            caption = page.get_by_text(f"{run} · epoch 10 · layer", exact=False).first
            assert f"layer {layer}" in caption.inner_text()  # the layer the link names
            _assert_no_errors(page, f"{run} deep link")
            ARTIFACTS.mkdir(exist_ok=True)
            for index, name in enumerate(PAGES):
                page.get_by_role("link", name=name).first.click()
                page.get_by_role("heading", name=name, exact=False).first.wait_for(timeout=WAIT_MS)
                _wait_idle(page)
                _assert_no_errors(page, f"{run}/{name}")
                assert "epoch 10" in sidebar.inner_text() or name in (
                    "Theory lab",
                    "Study",
                    "Transfer",
                )
                shot = ARTIFACTS / f"link-{run}-{index:02d}-{name.lower().replace(' ', '-')}.png"
                page.screenshot(path=str(shot), full_page=True)
        browser.close()


def test_ten_concurrent_sessions_all_get_their_plots(server):
    """Ten browser sessions open the demo at once; each must draw its chart without errors.

    On a 2-core machine the ten headless pages themselves (JS parsing, plotly rendering) take
    most of the time, about 25 s; the timeout leaves room for a busy machine."""
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        pages = [browser.new_context().new_page() for _ in range(10)]
        for page in pages:
            page.set_default_timeout(WAIT_MS)
        for page in pages:
            page.goto(server, wait_until="commit")
        for index, page in enumerate(pages):
            page.locator(".js-plotly-plot").first.wait_for(timeout=WAIT_MS)
            _assert_no_errors(page, f"session {index}")
        browser.close()


def test_recorded_run_uploaded_as_a_zip(server, tmp_path):
    """A run recorded with ncviz.Recorder from the example's custom CNN, zipped and uploaded:
    the Training page shows the log and the metrics, the Split switch shows the test split."""
    import zipfile

    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import record_custom_model
    finally:
        sys.path.pop(0)
    run = tmp_path / "custom-cnn"
    record_custom_model.main(["--out", str(run), "--epochs", "12"])
    archive = tmp_path / "custom-cnn.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for path in sorted(run.iterdir()):
            out.write(path, f"custom-cnn/{path.name}")
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(WAIT_MS)
        with _screenshot_on_failure("recorded", page):
            page.goto(server)
            page.locator(".js-plotly-plot").first.wait_for(timeout=WAIT_MS)
            _wait_idle(page)
            page.get_by_role("radio", name="Upload").click()
            _wait_idle(page)
            page.get_by_text("Your own model (any architecture)", exact=False).click()
            _wait_idle(page)
            page.screenshot(path=str(ARTIFACTS / "20-source-own-model.png"), full_page=True)
            _upload(page, 0, archive)
            _analyse(page, "12 checkpoint(s) × 3 layer(s)")
            page.get_by_text("12 checkpoint(s) × 3 layer(s)", exact=False).wait_for(timeout=WAIT_MS)
            _wait_idle(page)
            _assert_no_errors(page, "recorded upload")
            page.screenshot(path=str(ARTIFACTS / "21-source-recorded.png"), full_page=True)
            for index, name in enumerate(["Training", "Geometry", "Embedding"], start=22):
                page.get_by_role("link", name=name).first.click()
                page.get_by_role("heading", name=name, exact=False).first.wait_for(timeout=WAIT_MS)
                _wait_idle(page)
                page.locator(".js-plotly-plot").first.wait_for(timeout=WAIT_MS)
                _assert_no_errors(page, f"recorded {name}")
                page.screenshot(
                    path=str(ARTIFACTS / f"{index}-recorded-{name.lower()}.png"), full_page=True
                )
            page.get_by_role("link", name="Overview").first.click()
            _wait_idle(page)
            _pick(page, "Split", "test", "N = 397")  # the example's held-out digits
            _wait_idle(page)
            _assert_no_errors(page, "recorded overview, test split")
            page.screenshot(path=str(ARTIFACTS / "25-recorded-overview-test.png"), full_page=True)
        browser.close()


def test_attacks_fail_alone_while_another_session_works(server, tmp_path):
    """Against the real server: a data bomb and an architecture bomb each give their session one
    error line; a second session keeps drawing the demo and the health route keeps answering."""
    import io
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (1 << 30,)}
    )
    bomb = tmp_path / "bomb.npz"  # 4 KB on disk, declares 4 GiB
    with zipfile.ZipFile(bomb, "w") as archive:
        archive.writestr("inputs.npy", header.getvalue() + b"\0" * 64)
        labels = io.BytesIO()
        np.save(labels, np.zeros(10, np.int64))
        archive.writestr("labels.npy", labels.getvalue())
    checkpoint = ROOT / "checkpoints" / "digits-mlp" / "epoch_0600.safetensors"
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        attacker = browser.new_context().new_page()
        attacker.set_default_timeout(WAIT_MS)
        bystander = browser.new_context().new_page()
        bystander.set_default_timeout(WAIT_MS)
        with _screenshot_on_failure("attacks", attacker, bystander):
            attacker.goto(server)
            attacker.locator(".js-plotly-plot").first.wait_for(timeout=WAIT_MS)
            _wait_idle(attacker)
            _upload_checkpoint_and_data(attacker, checkpoint, bomb)
            _analyse(attacker, "declares 4.0 GiB")
            error = attacker.locator("[data-testid='stAlertContentError']").first
            error.wait_for(timeout=WAIT_MS)
            assert (
                "declares 4.0 GiB" in error.inner_text() and "Traceback" not in error.inner_text()
            )

            _choose(attacker, "Bundled dataset", "Dataset", exact=True)  # the selectbox's label
            attacker.get_by_role("textbox", name="Architecture arguments (JSON)").fill(
                '{"in_features": 64, "num_classes": 10, "widths": [40000, 40000]}'
            )
            attacker.keyboard.press("Control+Enter")
            _wait_idle(attacker)
            _analyse(attacker, "million parameters", errors=False)
            attacker.get_by_text("million parameters", exact=False).first.wait_for(timeout=WAIT_MS)

            bystander.goto(server)  # another session, meanwhile: the demo as usual
            bystander.locator(".js-plotly-plot").first.wait_for(timeout=WAIT_MS)
            _assert_no_errors(bystander, "bystander")
            with urllib.request.urlopen(f"{server}/_stcore/health", timeout=5) as response:
                assert response.read() == b"ok"
        browser.close()
