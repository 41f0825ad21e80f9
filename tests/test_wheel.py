"""The wheel is the product: built here, installed outside the checkout, it imports from its own
files, lists the bundled runs it carries, and `ncviz serve LOGDIR` opens a run of the folder by
its link in a browser."""

from __future__ import annotations

import os
import shutil
import signal
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.serving import free_port, wait_until_healthy

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(python, folder): a fresh virtual environment outside the checkout holding only the wheel;
    the dependencies come from this environment's site-packages through a .pth line (a .pth
    found there is not run, so the checkout's editable install stays invisible)."""
    folder = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(folder), str(ROOT)],
        check=True,
        cwd=folder,
    )
    (wheel,) = folder.glob("ncviz-*.whl")
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    packages = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (packages / "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", packages, wheel],
        check=True,
        cwd=folder,
    )
    return python, folder, wheel


def test_the_wheel_carries_the_dashboard_and_the_bundled_runs(installed):
    python, folder, wheel = installed
    names = zipfile.ZipFile(wheel).namelist()
    assert "ncviz_dashboard/main.py" in names and "ncviz_dashboard/views/geometry.py" in names
    assert "ncviz_demo_runs/digits-mlp/run.json" in names
    assert not [n for n in names if "__pycache__" in n or n.startswith(("tests/", "app/"))]
    report = subprocess.run(
        [
            str(python),
            "-c",
            "import ncviz, ncviz.server.launch as l, ncviz.demos.catalog as c; "
            "print(ncviz.__file__); print(l.dashboard_script()); print(c.bundled_runs_dir()); "
            "print(len(c.bundled_runs()))",
        ],
        cwd=folder,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\n")
    assert all(str(ROOT) not in line for line in report[:3]), report  # nothing from the checkout
    assert report[1].endswith("ncviz_dashboard/main.py") and report[2].endswith("ncviz_demo_runs")
    assert int(report[3]) == len(list((ROOT / "checkpoints").glob("*/run.json")))


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_ncviz_serve_from_the_wheel_opens_a_run_of_its_log_folder_by_link(installed, tmp_path):
    playwright_api = pytest.importorskip("playwright.sync_api")
    from tests.browser.test_dashboard_browser import CHROMIUM_FLAGS

    python, folder, _ = installed
    logs = tmp_path / "runs"
    shutil.copytree(ROOT / "checkpoints" / "digits-mlp", logs / "sweep" / "mlp")
    port = free_port()
    process = subprocess.Popen(
        [str(python), "-m", "ncviz", "serve", str(logs), "--port", str(port)],
        cwd=folder,
        env={**os.environ, "NCVIZ_CACHE_DIR": str(tmp_path / "cache")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        assert wait_until_healthy(url), "the installed dashboard never answered"
        with playwright_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            page = browser.new_page()
            page.goto(f"{url}/training?run=sweep/mlp&layer=blocks.1")
            page.locator(".js-plotly-plot").first.wait_for(timeout=600_000)
            body = page.inner_text("body")
            assert "Traceback" not in body and "not available here" not in body
            assert "run=sweep%2Fmlp" in page.url or "run=sweep/mlp" in page.url
            browser.close()
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
