"""benchmarks/busy.py, behind `make test-loaded`: busy processes that always stop, and the
command's own exit status."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import busy


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_busy_processes_run_inside_the_block_and_are_gone_after_it():
    with busy.busy(2) as pids:
        assert len(pids) == 2 and all(_alive(pid) for pid in pids)
    assert not any(_alive(pid) for pid in pids)  # stopped and reaped


def test_busy_processes_stop_when_the_block_raises():
    with pytest.raises(RuntimeError), busy.busy(1) as pids:
        raise RuntimeError("the workload failed")
    assert not _alive(pids[0])


def test_the_command_s_exit_status_is_returned(capsys):
    status = busy.main(["1", "--", sys.executable, "-c", "import sys; sys.exit(3)"])
    assert status == 3
    assert "exit 3" in capsys.readouterr().out
    assert busy.main(["two", "--", "true"]) == 2  # a usage error
