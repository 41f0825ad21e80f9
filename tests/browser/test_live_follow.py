"""`ncviz serve LOGDIR` while training goes on: a separate process records a run step by step and
the open Training page grows without a reload (TensorBoard's habit). Every wait is on a state —
the recorder's "recorded" line, the page's text — never on a timer."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.browser.test_dashboard_browser import (
    ARTIFACTS,
    BROWSER_MARKS,
    CHROMIUM,
    CHROMIUM_FLAGS,
    ROOT,
    WAIT_MS,
    _assert_no_errors,
    _screenshot_on_failure,
    playwright_api,
    running_server,
)

pytestmark = BROWSER_MARKS

# a training loop in its own process: one epoch and one capture per line read on stdin
RECORDER = """
import sys, torch
from torch import nn
from examples.record_custom_model import DigitNet, digits_loaders
import ncviz
torch.manual_seed(0)
model, (train, record, _) = DigitNet(), digits_loaders()
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
rec = ncviz.Recorder(sys.argv[1], layers=["neck", "logits:input"], classifier="logits")
for line in sys.stdin:
    step = int(line)
    model.train()
    for images, labels in train:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
    rec.capture(model, record, step=step)
    print("recorded", step, flush=True)
rec.close()
"""


class Recording:
    """The recorder process; :meth:`step` records one more epoch and returns once it landed."""

    def __init__(self, folder: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", RECORDER, str(folder)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.landed: list[float] = []

    def step(self, number: int) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"{number}\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().split() == ["recorded", str(number)]
        self.landed.append(time.monotonic())

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=120)


@contextlib.contextmanager
def _open_page(name: str, height: int = 1000):
    """A Chromium page (default timeout WAIT_MS), screenshotted as ``failed-name`` on failure."""
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": height})
        page.set_default_timeout(WAIT_MS)
        with _screenshot_on_failure(name, page):
            yield page
        browser.close()


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def log_server(tmp_path_factory, logdir):
    with running_server(tmp_path_factory, NCVIZ_DATA_DIR=str(logdir)) as (url, _):
        yield url


def test_the_training_page_grows_while_the_run_is_recorded(log_server, logdir):
    recording = Recording(logdir / "live")
    shown: list[float] = []
    try:
        recording.step(0)
        recording.step(1)
        with _open_page("live") as page:
            page.goto(f"{log_server}/training?run=live")
            page.get_by_text("2 checkpoint(s)").first.wait_for(timeout=WAIT_MS)
            page.locator(".js-plotly-plot").first.wait_for(timeout=WAIT_MS)
            page.evaluate("() => { window.ncvizMarker = 1; }")  # a reload would drop it
            for step in (2, 3, 4):
                recording.step(step)
                page.get_by_text(f"{step + 1} checkpoint(s)").first.wait_for(timeout=WAIT_MS)
                shown.append(time.monotonic())
            assert page.evaluate("() => window.ncvizMarker") == 1  # the same page grew
            assert "step=4" in page.url  # on the last checkpoint, the view moved on with it
            page.get_by_text("live · updated", exact=False).first.wait_for(timeout=WAIT_MS)
            page.locator(".js-plotly-plot").first.wait_for(timeout=WAIT_MS)
            _assert_no_errors(page, "live training page")
            page.screenshot(path=str(ARTIFACTS / "40-live-training.png"), full_page=True)
    finally:
        recording.close()
    delays = [round(s - landed, 2) for s, landed in zip(shown, recording.landed[2:])]
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "live-follow.json").write_text(json.dumps({"entry → page (s)": delays}))


OVERLAY_POINTS = """() => {
    for (const plot of document.querySelectorAll('.js-plotly-plot')) {
        const title = plot.layout && plot.layout.title && plot.layout.title.text;
        if (title && title.includes(' at ')) {
            return Object.fromEntries(plot._fullData.map((trace) => [trace.name, trace.x.length]));
        }
    }
    return null;
}"""


def test_a_run_overlaid_on_training_grows_while_it_is_recorded(log_server, logdir):
    """Several runs at once: the page shows a finished run with a growing one overlaid
    (``?runs=``); the overlaid run's curve gains each new checkpoint without a reload."""
    finished = Recording(logdir / "finished")
    for step in (0, 1, 2):
        finished.step(step)
    finished.close()
    growing = Recording(logdir / "growing")
    try:
        growing.step(0)
        growing.step(1)
        with _open_page("live-overlay", height=1400) as page:
            page.goto(f"{log_server}/training?run=finished&runs=growing")
            page.get_by_text("Several runs").first.wait_for(timeout=WAIT_MS)
            page.wait_for_function(
                f"() => JSON.stringify(({OVERLAY_POINTS})()) === "
                "JSON.stringify({finished: 3, growing: 2})",
                timeout=WAIT_MS,
            )
            page.evaluate("() => { window.ncvizMarker = 1; }")  # a reload would drop it
            for step in (2, 3):
                growing.step(step)
                page.wait_for_function(
                    f"() => {{ const points = ({OVERLAY_POINTS})(); "
                    f"return points && points.growing === {step + 1}; }}",
                    timeout=WAIT_MS,
                )
            assert page.evaluate("() => window.ncvizMarker") == 1  # the same page grew
            assert page.evaluate(OVERLAY_POINTS) == {"finished": 3, "growing": 4}
            assert "runs=growing" in page.url
            _assert_no_errors(page, "overlay of a growing run")
            page.screenshot(path=str(ARTIFACTS / "41-live-overlay.png"), full_page=True)
    finally:
        growing.close()
