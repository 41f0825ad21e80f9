"""Starting the dashboard: the one Streamlit command line that ``ncviz serve``, ``make run``,
the browser tests and the dashboard benchmark all use (no copy of its flags to drift apart).

The dashboard's scripts are ``app/`` in a checkout and the package ``ncviz_dashboard`` in the
wheel (setup.py maps one to the other); this module only finds them and builds the command, and
never imports Streamlit (``ncviz`` stays free of UI code).
"""

from __future__ import annotations

import errno
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from ncviz.demos.catalog import installed_folder
from ncviz.errors import OptionError
from ncviz.load.server_folder import ENV_VAR as LOGDIR_VARIABLE

DEFAULT_PORT = 8501
DEFAULT_HOST = "127.0.0.1"  # this machine only; 0.0.0.0 shares it on the network


# what the repository's .streamlit/config.toml sets (read by a bare `streamlit run app/main.py` in
# a checkout), given as flags so that an installed wheel, started from any folder, behaves the
# same; a setting given in the environment (STREAMLIT_SERVER_MAX_UPLOAD_SIZE=512 in the Docker
# image) is left to it, as it would win over the config file
CONFIG_FLAGS = {
    "server.maxUploadSize": "1024",
    # no watching of the dashboard's own sources for edits: that polls files in the server
    # and re-scans the imported modules after every rerun (a followed page reruns every 2 s)
    "server.fileWatcherType": "none",
    # no full garbage collection after every rerun: the dashboard collects after each page run
    # itself (ncviz.server.heap), not after a followed page's fragment ticks
    "runner.postScriptGC": "false",
    "client.toolbarMode": "minimal",
    "client.showErrorDetails": "none",  # a one-line error, never a traceback, in the page
    "theme.primaryColor": "#1f77b4",
}


def dashboard_script() -> Path:
    """The dashboard's entry script: ``app/main.py`` of a checkout, else the installed wheel's
    ``ncviz_dashboard/main.py``."""
    checkout = Path(__file__).resolve().parents[2] / "app" / "main.py"
    if checkout.is_file():
        return checkout
    folder = installed_folder("ncviz_dashboard")
    if folder is not None and (folder / "main.py").is_file():
        return folder / "main.py"
    raise OptionError(
        "the dashboard's scripts are missing from this installation (no app/main.py or "
        "ncviz_dashboard); reinstall ncviz from its wheel or a checkout."
    )


def streamlit_command(
    port: int = DEFAULT_PORT, host: str = DEFAULT_HOST, environment: Mapping[str, str] | None = None
) -> list[str]:
    """``python -m streamlit run app/main.py`` headless on ``host:port``, usage statistics off,
    and :data:`CONFIG_FLAGS` except those ``environment`` (default: this process's) sets itself.

    >>> streamlit_command(8600, environment={})[7:13]
    ['--server.port', '8600', '--server.headless', 'true', '--browser.gatherUsageStats', 'false']
    """
    given = os.environ if environment is None else environment
    defaults = {
        name: value for name, value in CONFIG_FLAGS.items() if environment_name(name) not in given
    }
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(dashboard_script()),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        *(part for name, value in defaults.items() for part in (f"--{name}", value)),
    ]


def environment_name(option: str) -> str:
    """The environment variable Streamlit reads for a config option.

    >>> environment_name("server.maxUploadSize")
    'STREAMLIT_SERVER_MAX_UPLOAD_SIZE'
    """
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", option.replace(".", "_"))
    return f"STREAMLIT_{snake.upper()}"


def check_port_free(port: int, host: str = DEFAULT_HOST) -> None:
    """One line naming the fix when ``host:port`` cannot be listened on."""
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise OptionError(
                    f"port {port} is in use (another dashboard?); pass --port {port + 1} or stop "
                    "the other server."
                ) from None
            raise OptionError(f"cannot listen on {host}:{port} ({error.strerror}).") from None


def serve(logdir: str | Path | None, port: int = DEFAULT_PORT, host: str = DEFAULT_HOST) -> int:
    """Run the dashboard until it stops (Ctrl-C stops it cleanly); ``logdir``: a folder whose
    runs the Source page lists (else the bundled runs only). Returns Streamlit's exit code."""
    environment = dict(os.environ)
    if logdir is not None:
        folder = Path(logdir).expanduser().resolve()
        if not folder.is_dir():
            raise OptionError(f"log folder {logdir} does not exist; pass a folder of runs.")
        environment[LOGDIR_VARIABLE] = str(folder)
    check_port_free(port, host)
    command = streamlit_command(port, host, environment)
    shown = "localhost" if host in ("127.0.0.1", "localhost") else host
    print(f"ncviz dashboard: http://{shown}:{port}  (Ctrl-C stops it)", flush=True)
    process = subprocess.Popen(command, env=environment)
    previous = signal.signal(signal.SIGTERM, _terminated)  # `kill`, `docker stop`
    try:
        return process.wait()
    except _Terminated:  # sent to this process alone: pass it on as a Ctrl-C
        process.send_signal(signal.SIGINT)
        return _finish(process)
    except KeyboardInterrupt:  # the terminal's Ctrl-C reached the server too: let it finish
        return _finish(process)
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Terminated(Exception):
    """SIGTERM arrived (raised by the handler :func:`serve` installs)."""


def _terminated(signum: int, frame: object) -> None:
    raise _Terminated


def _finish(process: subprocess.Popen) -> int:
    """The server's exit code once it stopped; killed after 10 s."""
    try:
        return process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()
