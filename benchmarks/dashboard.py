"""Dashboard timings in a real browser (Debian chromium + Playwright), run by hand.

1. cold start: a fresh server with an empty cache → first plotly chart visible (target ≤ 60 s);
2. container start: a fresh server whose cache ``python -m ncviz.server.warmup`` filled (as the
   Docker image does at build time) → first plotly chart visible (target ≤ 5 s);
3. re-render: click between pages of the analysed demo → charts visible (target ≤ 1.5 s).

``.venv/bin/python benchmarks/dashboard.py``
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from ncviz.server.launch import streamlit_command

ROOT = Path(__file__).resolve().parents[1]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PAGES = ["Geometry", "Angles", "Spectra", "Depth", "Training", "Overview"]


def main() -> None:
    warm = tempfile.mkdtemp(prefix="ncviz-bench-warm-")
    environment = {**os.environ, "NCVIZ_CACHE_DIR": warm}
    warmup = [sys.executable, "-m", "ncviz.server.warmup"]
    subprocess.run(warmup, cwd=ROOT, check=True, env=environment, stdout=subprocess.DEVNULL)
    try:
        measure(
            warm, "container start (cache filled by ncviz.server.warmup) → first plot", 5, False
        )
    finally:
        shutil.rmtree(warm, ignore_errors=True)
    cache = tempfile.mkdtemp(prefix="ncviz-bench-cache-")
    try:
        measure(cache, "cold start (server launch, empty cache) → first plot", 60, True)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def measure(cache: str, what: str, target: float, pages: bool) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.perf_counter()
    server = subprocess.Popen(
        streamlit_command(port),
        cwd=ROOT,
        env={**os.environ, "NCVIZ_CACHE_DIR": cache},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            while True:
                try:
                    page.goto(f"http://127.0.0.1:{port}", timeout=2000)
                    break
                except Exception:
                    time.sleep(0.2)
            page.locator(".js-plotly-plot").first.wait_for(timeout=120_000)
            cold = time.perf_counter() - start
            print(f"{what}: {cold:.1f} s (target ≤ {target:g} s)")
            if not pages:
                browser.close()
                return
            times = []
            for _ in range(3):
                for name in PAGES:
                    t0 = time.perf_counter()
                    page.get_by_role("link", name=name).first.click()
                    page.get_by_role("heading", name=name).first.wait_for()
                    if name != "Overview":
                        page.locator(".js-plotly-plot").first.wait_for()
                    page.wait_for_function(
                        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
                    )
                    times.append(time.perf_counter() - t0)
            print(
                f"page re-render (click → charts drawn), {len(times)} visits: median "
                f"{statistics.median(times):.2f} s, max {max(times):.2f} s (target ≤ 1.5 s)"
            )
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
