"""Busy processes beside a workload: how ncviz behaves on a loaded machine (a laptop during
training, a shared lab server, CI).

    python benchmarks/busy.py 2 -- make test      # the whole suite beside two busy processes

Each busy process spins one core in pure Python; they are started here and always stopped by
PID (terminate, then kill), whatever the command does. The command's exit status is returned and
its wall time printed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


@contextmanager
def busy(count: int) -> Iterator[list[int]]:
    """``count`` processes spinning a core each for the duration of the block (their PIDs)."""
    processes = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(max(0, count))
    ]
    try:
        yield [p.pid for p in processes]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def main(argv: Sequence[str]) -> int:
    if "--" not in argv or argv.index("--") != 1 or not argv[0].isdigit() or len(argv) < 3:
        print("usage: python benchmarks/busy.py N -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    count, command = int(argv[0]), list(argv[2:])
    start = time.perf_counter()
    with busy(count) as pids:
        print(f"busy.py: {count} busy process(es) {pids} beside: {' '.join(command)}", flush=True)
        status = subprocess.call(command)
    minutes = (time.perf_counter() - start) / 60
    print(f"busy.py: exit {status} after {minutes:.1f} min beside {count} busy process(es)")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
