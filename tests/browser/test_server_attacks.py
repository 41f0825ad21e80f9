"""A hostile user of the shared server, in a real browser, while a monitor probes the server.

The three uploads that once killed the whole server (issue 26), and a 32,000-class features file
opened on every page, each fail — or draw — for their own session only: a second session draws
the demo, the health route answers every probe (one a second), and the server process stays
under 1 GB of resident memory throughout (workers are separate processes with their own budget).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.browser.test_dashboard_browser import (
    ARTIFACTS,
    BROWSER_MARKS,
    CHROMIUM,
    CHROMIUM_FLAGS,
    PAGES,
    ROOT,
    WAIT_MS,
    _analyse,
    _assert_no_errors,
    _screenshot_on_failure,
    _until_shown,
    _upload,
    _wait_idle,
    playwright_api,
    running_server,
)

pytestmark = BROWSER_MARKS

MAX_SERVER_RSS = 1 << 30
VOCABULARY = 32_000


class Monitor:
    """Probes ``/_stcore/health`` once a second and samples the server's resident memory."""

    def __init__(self, url: str, pid: int) -> None:
        self.url, self.pid = url, pid
        self.probes = 0
        self.failures: list[str] = []
        self.slowest = 0.0
        self.peak_rss = 0
        self.phases: dict[str, int] = {}  # peak RSS (MB) per phase
        self._phase_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def mark(self, phase: str) -> None:
        """Note the peak RSS since the last mark under ``phase`` (for the closing numbers)."""
        self.phases[phase] = round(max(self._phase_peak, self._rss()) / 2**20)
        self._phase_peak = 0

    def __enter__(self) -> Monitor:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _rss(self) -> int:
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                # a generous bound per probe: a loaded CI machine answers slowly, never not at all
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=30) as reply:
                    if reply.read() != b"ok":
                        self.failures.append(f"probe {self.probes}: not ok")
            except OSError as error:
                self.failures.append(f"probe {self.probes}: {error}")
            self.slowest = max(self.slowest, time.monotonic() - started)
            rss = self._rss()
            self.peak_rss = max(self.peak_rss, rss)
            self._phase_peak = max(self._phase_peak, rss)
            self.probes += 1
            self._stop.wait(max(0.0, 1.0 - (time.monotonic() - started)))


def _vocabulary_features(path: Path) -> Path:
    """A features file of 32,000 classes (two samples each) in 16 dimensions."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(VOCABULARY), 2)
    features = rng.standard_normal((VOCABULARY, 16))[labels] + 0.1 * rng.standard_normal(
        (len(labels), 16)
    )
    np.savez(path, **{"features.penultimate": features.astype(np.float32), "labels": labels})
    return path


def _run_trained_on_a_data_bomb(path: Path) -> Path:
    """A zipped run (digits-mlp's last checkpoint) whose run.json names as its training data an
    .npz of 4 KB that declares a 4 GiB array."""
    from tests.load.test_limits import npz_declaring

    run = ROOT / "checkpoints" / "digits-mlp"
    raw = {**json.loads((run / "run.json").read_text()), "train_data": "train.npz"}
    raw.update(name="bombed")
    raw.pop("log", None)
    bomb = npz_declaring(path.parent / "train.npz", "inputs", (1 << 30,))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bombed/run.json", json.dumps(raw))
        archive.write(run / "epoch_0600.safetensors", "bombed/epoch_0600.safetensors")
        archive.write(bomb, "bombed/train.npz")
    return path


def _wide_graph(folder: Path) -> list[Path]:
    """An ONNX graph whose named layer needs 8.9 GiB for two samples (a Cos over a broadcast)."""
    pytest.importorskip("onnxscript", reason="the dynamo exporter needs onnxscript")
    from tests.onnx.test_onnx import WideBomb, export

    export(WideBomb(), folder / "bomb.onnx")
    return sorted(folder.glob("bomb.onnx*"))


def _visit(page, name: str) -> None:
    page.get_by_role("link", name=name).first.click()
    page.get_by_role("heading", name=name, exact=False).first.wait_for(timeout=WAIT_MS)
    _wait_idle(page)


def _fresh_upload_form(page, url: str) -> None:
    """A new session (a reload starts one) on the Source page's upload form."""
    page.goto(url)
    page.locator(".js-plotly-plot").first.wait_for(timeout=WAIT_MS)
    _wait_idle(page)
    page.get_by_role("radio", name="Upload").click()
    _wait_idle(page)


def _upload_files(page, paths: list[Path]) -> None:
    with page.expect_response(
        lambda r: "/_stcore/upload_file/" in r.url and r.request.method == "PUT",
        timeout=WAIT_MS,
    ):
        page.locator("input[type='file']").first.set_input_files([str(p) for p in paths])
    page.locator("[data-testid='stFileChip']").nth(len(paths) - 1).wait_for(timeout=WAIT_MS)
    _wait_idle(page)


@pytest.fixture(scope="module")
def guarded_server(tmp_path_factory):
    # a 2 GB worker budget: the graph's 8.9 GiB tensor fails at once on any machine
    with running_server(tmp_path_factory, NCVIZ_WORKER_MEMORY_GB="2") as (url, process):
        yield url, process.pid


def test_attacks_and_a_vocabulary_leave_the_server_up_and_small(guarded_server, tmp_path):
    url, pid = guarded_server
    vocabulary = _vocabulary_features(tmp_path / "vocabulary.npz")
    bombed_run = _run_trained_on_a_data_bomb(tmp_path / "bombed.zip")
    graph = _wide_graph(tmp_path)
    report: dict[str, object] = {}
    with Monitor(url, pid) as monitor, playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        attacker = browser.new_context().new_page()
        attacker.set_default_timeout(WAIT_MS)
        attacker.set_viewport_size({"width": 1400, "height": 1000})
        bystander = browser.new_context().new_page()
        bystander.set_default_timeout(WAIT_MS)
        with _screenshot_on_failure("server-attacks", attacker, bystander):
            # 1. 32,000 classes on every page: bounded views, heavy work in workers
            _fresh_upload_form(attacker, url)
            _upload(attacker, 0, vocabulary)
            _analyse(attacker, "1 checkpoint(s) × 1 layer(s)")
            _assert_no_errors(attacker, "vocabulary analysed")
            largest = 0
            for name in PAGES:
                _visit(attacker, name)
                _assert_no_errors(attacker, f"vocabulary {name}")
                sizes = attacker.evaluate(
                    "() => Array.from(document.querySelectorAll('.js-plotly-plot'))"
                    ".map(p => JSON.stringify({data: p.data, layout: p.layout}).length)"
                )
                largest = max([largest, *sizes])
                if name == "Geometry":
                    attacker.screenshot(path=str(ARTIFACTS / "30-vocabulary-geometry.png"))
            report["largest figure (bytes)"] = largest
            monitor.mark("32,000 classes on every page")

            # 2. "List layers" on a graph whose layer needs 8.9 GiB: a worker's one line
            _fresh_upload_form(attacker, url)
            _upload_files(attacker, graph)
            box = attacker.get_by_role("combobox", name="Dataset")
            box.click()
            attacker.keyboard.type("builtin:digits?shape=image")
            attacker.keyboard.press("Enter")
            _wait_idle(attacker)
            error = attacker.locator("[data-testid='stAlertContentError']")
            _until_shown(
                attacker,
                lambda: attacker.get_by_role("button", name="List layers").click(),
                error,
                "the layer listing's error",
            )
            assert "needs a 8.9 GiB tensor" in error.first.inner_text(), error.first.inner_text()
            monitor.mark("listing an 8.9 GiB graph's layers")

            # 3. a run trained on a data bomb, opened on the Imbalance page
            _fresh_upload_form(attacker, url)
            _upload(attacker, 0, bombed_run)
            _analyse(attacker, "bombed: 1 checkpoint(s)")
            _assert_no_errors(attacker, "bombed run analysed")
            _visit(attacker, "Imbalance")
            error = attacker.locator("[data-testid='stAlertContentError']")
            error.first.wait_for(timeout=WAIT_MS)  # the counts' job fails in its worker
            assert error.count() == 1 and "declares 4.0 GiB" in error.first.inner_text()
            assert attacker.locator("[data-testid='stDataFrame']").count() >= 1  # the table
            monitor.mark("Imbalance page of a run trained on a data bomb")

            bystander.goto(url)  # another session, meanwhile: the demo as usual
            bystander.locator(".js-plotly-plot").first.wait_for(timeout=WAIT_MS)
            _assert_no_errors(bystander, "bystander")
        browser.close()
    report.update(
        {
            "health probes": monitor.probes,
            "slowest probe (s)": round(monitor.slowest, 2),
            "peak server RSS (MB)": round(monitor.peak_rss / 2**20),
            "peak server RSS per attack (MB)": monitor.phases,
        }
    )
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "server-attacks.json").write_text(json.dumps(report, indent=2))
    assert not monitor.failures, monitor.failures
    assert monitor.probes > 10 and 0 < monitor.peak_rss < MAX_SERVER_RSS, report
