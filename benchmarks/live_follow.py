"""Following runs live with `ncviz serve LOGDIR` (issue 24).

1. Entry → page: a separate process records a run epoch by epoch while a browser shows its
   Training page; for each of 10 entries, the time from the Recorder having written it to the
   page showing it (median and max).
2. Idle cost: N (default 20) more pages open on N runs of the folder while nothing changes;
   the server process's CPU use over 30 s (user + system time of the process and its threads).

    .venv/bin/python benchmarks/live_follow.py [N]
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
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ncviz.server.launch import streamlit_command  # noqa: E402
from tests.browser.test_live_follow import Recording  # noqa: E402

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
WAIT_MS = 600_000


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(followed: int = 20) -> None:
    logs = Path(tempfile.mkdtemp(prefix="ncviz-live-"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    environment = {**os.environ, "NCVIZ_DATA_DIR": str(logs), "NCVIZ_CACHE_DIR": str(logs / ".c")}
    recording = Recording(logs / "live")
    recording.step(0)
    server = subprocess.Popen(
        streamlit_command(port),
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                    if reply.read() == b"ok":
                        break
            except OSError:
                time.sleep(0.3)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=FLAGS)
            page = browser.new_page()
            page.goto(f"{url}/training?run=live")
            page.get_by_text("1 checkpoint(s)").first.wait_for(timeout=WAIT_MS)
            delays = []
            for step in range(1, 11):
                recording.step(step)
                page.get_by_text(f"{step + 1} checkpoint(s)").first.wait_for(timeout=WAIT_MS)
                delays.append(time.monotonic() - recording.landed[-1])
            print(
                f"entry on disk → page shows it: median {statistics.median(delays):.2f} s, "
                f"max {max(delays):.2f} s over {len(delays)} entries (poll every 2 s)",
                flush=True,
            )
            recording.close()
            for index in range(followed):
                shutil.copytree(logs / "live", logs / f"run-{index:02d}")
            pages = []
            for index in range(followed):
                other = browser.new_context().new_page()  # its own session and connections
                other.set_default_timeout(WAIT_MS)
                other.goto(f"{url}/training?run=run-{index:02d}")
                other.bring_to_front()  # a background tab does not render
                other.get_by_text("11 checkpoint(s)").first.wait_for(timeout=WAIT_MS)
                pages.append(other)
                print(f"page {index + 1}/{followed} open", flush=True)
            time.sleep(5)  # let the last pages settle before measuring the idle state
            before, started = _cpu_seconds(server.pid), time.monotonic()
            time.sleep(30)
            used = _cpu_seconds(server.pid) - before
            elapsed = time.monotonic() - started
            print(
                f"idle cost of following {followed + 1} open pages (nothing changes): server CPU "
                f"{100 * used / elapsed:.1f}% of one core over {elapsed:.0f} s"
            )
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(logs, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
