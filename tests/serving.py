"""What the tests that start a dashboard share: a free local port, and waiting until the server
answers its health route (polled, never timed: a slow machine makes a test slower, not red)."""

from __future__ import annotations

import os
import socket
import time
import urllib.request

# a hang guard only; every wait is on the server's state
WAIT_S = int(os.environ.get("NCVIZ_TEST_WAIT_MS", "600000")) / 1000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_healthy(url: str) -> bool:
    """True once ``url``'s ``/_stcore/health`` answers "ok"; False if it never did."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                if reply.read() == b"ok":
                    return True
        except OSError:
            time.sleep(0.3)
    return False
