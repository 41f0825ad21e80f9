"""`ncviz serve`: the dashboard on this machine from one command, stopped cleanly by Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from ncviz.cli import main
from ncviz.server.launch import CONFIG_FLAGS, environment_name, streamlit_command
from tests.serving import free_port, wait_until_healthy

ROOT = Path(__file__).resolve().parents[1]


def test_the_command_is_headless_local_private_and_says_what_the_config_file_says():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    command = streamlit_command(8600, environment={})
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4].endswith("app/main.py")
    flags = dict(zip(command[5::2], command[6::2]))
    assert flags == {
        "--server.address": "127.0.0.1",
        "--server.port": "8600",
        "--server.headless": "true",
        "--browser.gatherUsageStats": "false",
        **{f"--{name}": value for name, value in CONFIG_FLAGS.items()},
    }
    # a bare `streamlit run app/main.py` in a checkout reads the config file: the same values
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    for name, value in CONFIG_FLAGS.items():
        section, key = name.split(".")
        written = config[section][key]
        assert (str(written).lower() if isinstance(written, bool) else str(written)) == value, name


def test_a_setting_in_the_environment_is_left_to_it():
    """The Docker image sets STREAMLIT_SERVER_MAX_UPLOAD_SIZE=512: a flag would override it
    (Streamlit ranks flags above the environment), so the command leaves that option out."""
    from streamlit import config

    for name in CONFIG_FLAGS:  # the names Streamlit itself reads
        assert environment_name(name) == config._config_options_template[name].env_var
    command = streamlit_command(8600, environment={"STREAMLIT_SERVER_MAX_UPLOAD_SIZE": "512"})
    assert "--server.maxUploadSize" not in command
    assert command[command.index("--runner.postScriptGC") + 1] == "false"


def test_a_port_in_use_and_a_missing_folder_are_one_line_each(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"port {port} is in use" in error and "--port" in error
    assert main(["serve", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["ctrl-c", "sigterm"])
def test_serve_answers_and_stops_on_ctrl_c_or_a_kill(tmp_path, stop):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "ncviz", "serve", str(tmp_path), "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "NCVIZ_CACHE_DIR": str(tmp_path / "cache")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        text=True,
    )
    try:
        assert process.stdout is not None
        assert f"http://localhost:{port}" in process.stdout.readline()
        assert wait_until_healthy(f"http://127.0.0.1:{port}"), "the dashboard never answered"
        if stop == "ctrl-c":
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
        else:
            process.terminate()  # `kill`, `docker stop`: this process alone
        assert process.wait(timeout=120) == 0
        with pytest.raises(OSError):  # nothing listens any more
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
