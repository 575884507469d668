"""``aip up`` and ``aip down``: start and stop the local control plane.

The server records itself in ``$AIP_HOME/server.json`` (``{"url", "pid"}``); that file is how
``aip up --detach`` knows its child is ready and how ``aip down`` finds the process to stop.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from aip.config import Settings

START_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 0.1
LOG_TAIL_LINES = 20


class Backend(StrEnum):
    local = "local"
    ray = "ray"


def up(
    host: Annotated[str | None, typer.Option(
        help="Address to listen on (default: from the config, else 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(
        help="Port to listen on (default: from the config, else 8470).")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", metavar="FILE", help="Platform config (nodes, accelerators, labels).")] = None,
    detach: Annotated[bool, typer.Option(
        "--detach", "-d", help="Run in the background; logs go to $AIP_HOME/server.log.")] = False,
    backend: Annotated[Backend | None, typer.Option(
        help="Where replicas run: local processes, or the nodes of a Ray cluster "
             "(default: AIP_BACKEND, else the config's server.backend, else local).")] = None,
    ray_address: Annotated[str | None, typer.Option(
        "--ray-address", metavar="ADDR",
        help="The Ray cluster for --backend ray, e.g. 10.0.0.1:6379 (default: "
             "AIP_RAY_ADDRESS, else the config's server.ray_address, else the cluster "
             "`ray start` runs on this host).")] = None,
) -> None:
    """Start the AIP server on this machine (in the foreground unless --detach)."""
    from aip.cli.output import note
    from aip.config import Settings

    settings = Settings()
    running = running_server(settings)
    if running is not None:
        note(f"AIP is already up at {running['url']} (pid {running['pid']}); "
             "stop it with `aip down`", style="")
        return
    if config is not None:
        config = config.resolve()
    backend_name = backend.value if backend is not None else None
    if not detach:
        from aip.server.main import run_server

        run_server(host=host, port=port, config_path=config, backend=backend_name,
                   ray_address=ray_address)
        return
    url = _start_detached(settings, host, port, config, backend_name, ray_address)
    log_path = settings.home / "server.log"
    note(f"AIP is up at {url} (logs: {log_path}; stop with `aip down`)", style="green")


def down(
    timeout: Annotated[float, typer.Option(
        help="Seconds to wait for a clean stop.")] = 20.0,
    force: Annotated[bool, typer.Option(
        "--force", help="Kill the server if it has not stopped in time.")] = False,
) -> None:
    """Stop the AIP server that `aip up` started on this machine."""
    from aip.cli.output import note
    from aip.config import Settings
    from aip.errors import AIPError

    settings = Settings()
    info = settings.read_server_info()
    pid = _pid_of(info)
    if pid is None:
        note(f"AIP is not running (nothing recorded in {settings.server_info_path})", style="")
        return
    if not _is_aip_process(pid):
        settings.server_info_path.unlink(missing_ok=True)
        note(f"AIP is not running (pid {pid} is gone; removed the stale "
             f"{settings.server_info_path})", style="")
        return
    os.kill(pid, signal.SIGTERM)
    if not _wait_for_exit(pid, timeout):
        if not force:
            raise AIPError(f"the AIP server (pid {pid}) did not stop within {timeout:g}s; "
                           "`aip down --force` kills it")
        os.kill(pid, signal.SIGKILL)
        _wait_for_exit(pid, 5.0)
    if _pid_of(settings.read_server_info()) == pid:  # the server did not get to clean up
        settings.server_info_path.unlink(missing_ok=True)
    note(f"AIP stopped (pid {pid})", style="green")


def running_server(settings: Settings) -> dict[str, Any] | None:
    """The recorded local server if it is alive and answers /health, else None."""
    from aip.client import check_health

    info = settings.read_server_info()
    pid = _pid_of(info)
    if info is None or pid is None or not info.get("url") or not _is_aip_process(pid):
        return None
    if check_health(str(info["url"])) is None:
        return None
    return info


def _start_detached(
    settings: Settings, host: str | None, port: int | None, config: Path | None,
    backend: str | None = None, ray_address: str | None = None,
) -> str:
    """Spawn ``python -m aip up`` in its own session; return its URL once it is healthy."""
    from aip.cli.output import stderr
    from aip.client import check_health
    from aip.errors import ServerUnavailable

    if port is not None and _port_taken(host or "127.0.0.1", port):
        raise ServerUnavailable(
            f"port {port} on {host or '127.0.0.1'} is already in use: stop what runs there "
            "(`aip down` if it is an AIP server) or pick another --port")
    settings.home.mkdir(parents=True, exist_ok=True)
    log_path = settings.home / "server.log"
    args = [sys.executable, "-m", "aip", "up"]
    if host is not None:
        args += ["--host", host]
    if port is not None:
        args += ["--port", str(port)]
    if config is not None:
        args += ["--config", str(config)]
    if backend is not None:
        args += ["--backend", backend]
    if ray_address is not None:
        args += ["--ray-address", ray_address]
    with open(log_path, "ab") as log:
        child = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    with stderr().status("starting the AIP server ..."):
        while True:
            code = child.poll()
            if code is not None:
                raise ServerUnavailable(
                    f"the AIP server exited with code {code} while starting; the end of "
                    f"{log_path}:\n{_tail(log_path)}")
            info = settings.read_server_info()
            if info and _pid_of(info) == child.pid and info.get("url"):
                url = str(info["url"])
                if check_health(url, timeout=1.0) is not None:
                    return url
            if time.monotonic() > deadline:
                child.terminate()
                raise ServerUnavailable(
                    f"the AIP server did not become healthy within {START_TIMEOUT_SECONDS:g}s "
                    f"and was stopped; see {log_path}")
            time.sleep(POLL_SECONDS)


def _port_taken(host: str, port: int) -> bool:
    """True if something already accepts connections there."""
    connect_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    if connect_host == "::":
        connect_host = "::1"
    try:
        with socket.create_connection((connect_host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _pid_of(info: dict[str, object] | None) -> int | None:
    pid = info.get("pid") if info else None
    return pid if isinstance(pid, int) and pid > 0 else None


def _is_aip_process(pid: int) -> bool:
    """True if ``pid`` is alive and, where /proc tells, is an aip process (pids get reused)."""
    import psutil

    if not psutil.pid_exists(pid):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    try:
        return b"aip" in cmdline.read_bytes()
    except OSError:
        return True  # no /proc (macOS): trust the pid


def _wait_for_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _is_aip_process(pid):
            return True
        time.sleep(POLL_SECONDS)
    return not _is_aip_process(pid)


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-LOG_TAIL_LINES:])
