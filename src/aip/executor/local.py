"""``LocalExecutor``: replicas as processes on this host.

Each replica runs under a small wrapper (``aip/executor/wrapper.py``, stdlib only) that is
the leader of its own session and process group. The wrapper starts the command, relays
SIGTERM/SIGINT to the group once, and writes ``started.json`` and ``exit.json`` into the
replica's status directory. Because the wrapper is in its own session, replicas keep running
when the control plane dies; a new control plane polls them from their handles:

- alive: the handle's pid exists, is not a zombie, and is the same process (its create time
  matches within 10 ms, or, after a wall-clock step, its command line names this status dir);
- otherwise the outcome is read from ``exit.json``; missing that, from the stop marker this
  executor writes before it signals (``stop.json``: a SIGKILL leaves the wrapper no chance
  to write); missing both, the replica is ``lost``.

Status directory of one replica::

    handle.json    the ReplicaHandle, written at launch (makes launch idempotent)
    started.json   written by the wrapper once the command runs
    exit.json      written by the wrapper when the command ended (or could not start)
    stop.json      written by terminate()/kill() just before signalling
    reason         one line the command may write (``$AIP_REASON_FILE``) to say why it failed;
                   the wrapper copies it into exit.json and poll's reason ends with it

The replica's environment is this process's environment without any ``AIP_*`` variable (the
server's settings and secrets, such as ``AIP_TOKEN``), plus ``PYTHONUNBUFFERED=1`` so logs
stream promptly, plus ``LaunchRequest.env`` (which may override both).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import psutil

from aip.errors import Conflict
from aip.executor.base import LaunchRequest, ReplicaHandle, ReplicaStatus
from aip.executor.wrapper import EXIT_FILE, REASON_FILE, STARTED_FILE

log = logging.getLogger(__name__)

WRAPPER_PATH = str(Path(__file__).with_name("wrapper.py"))
# -I: ignore PYTHON* variables and the user site; -S: skip site-packages. The wrapper needs
# only the standard library, and both save startup time.
WRAPPER_FLAGS = ("-I", "-S")
HANDLE_FILE = "handle.json"
STOP_FILE = "stop.json"
CREATE_TIME_TOLERANCE = 0.01  # seconds; create times have clock-tick (10 ms) resolution
SERVER_ENV_PREFIX = "AIP_"

Identity = Literal["alive", "ended", "other"]


class LocalExecutor:
    """Runs replicas as local processes. See the ``Executor`` protocol for the contracts.

    ``python`` runs the wrapper (default: this interpreter). ``base_environ`` replaces
    ``os.environ`` as the environment replicas inherit (read at each launch)."""

    def __init__(self, *, python: str | None = None,
                 base_environ: Mapping[str, str] | None = None) -> None:
        self._python = python or sys.executable
        self._base_environ = base_environ
        self._children: dict[str, subprocess.Popen[bytes]] = {}  # replica_id -> its wrapper
        self._lock = threading.Lock()

    # -- Executor -------------------------------------------------------------------------

    def load_handle(self, data: Mapping[str, Any]) -> ReplicaHandle:
        return ReplicaHandle.from_dict(data)

    def launch(self, request: LaunchRequest) -> ReplicaHandle:
        status_dir = Path(request.status_dir)
        existing = read_handle(status_dir, request.replica_id)
        if existing is not None:
            if existing.replica_id == request.replica_id:
                return existing
            if self._identify(existing) == "alive":
                raise Conflict(f"status directory {status_dir} belongs to replica "
                               f"{existing.replica_id}, which is still running")
        status_dir.mkdir(parents=True, exist_ok=True)
        for stale in (HANDLE_FILE, STARTED_FILE, EXIT_FILE, STOP_FILE, REASON_FILE):
            (status_dir / stale).unlink(missing_ok=True)
        Path(request.working_dir).mkdir(parents=True, exist_ok=True)
        Path(request.log_path).parent.mkdir(parents=True, exist_ok=True)

        argv = [self._python, *WRAPPER_FLAGS, WRAPPER_PATH, str(status_dir), "--",
                *request.command]
        with open(request.log_path, "ab") as log:
            process = subprocess.Popen(
                argv, cwd=request.working_dir, env=self._environment(request.env),
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True, close_fds=True)
        handle = ReplicaHandle(replica_id=request.replica_id, pid=process.pid,
                               create_time=_create_time(process.pid),
                               status_dir=str(status_dir))
        try:
            write_json(status_dir / HANDLE_FILE, handle.to_dict())
        except OSError:
            os.killpg(process.pid, signal.SIGKILL)  # a replica nobody can find must not run
            process.wait()
            raise
        with self._lock:
            self._children[request.replica_id] = process
        self._reap_finished()
        return handle

    def poll(self, handle: ReplicaHandle) -> ReplicaStatus:
        wrapper_exit: int | None = None
        child = self._child(handle)
        if child is not None:
            wrapper_exit = child.poll()
            if wrapper_exit is None:
                return ReplicaStatus("running", reason="running")
            with self._lock:
                self._children.pop(handle.replica_id, None)
        elif self._identify(handle) == "alive":
            return ReplicaStatus("running", reason="running")
        return final_status(Path(handle.status_dir), wrapper_exit)

    def terminate(self, handle: ReplicaHandle) -> None:
        self._stop(handle, signal.SIGTERM)

    def kill(self, handle: ReplicaHandle) -> None:
        self._stop(handle, signal.SIGKILL)

    # -- helpers --------------------------------------------------------------------------

    def _environment(self, extra: Mapping[str, str]) -> dict[str, str]:
        base = os.environ if self._base_environ is None else self._base_environ
        env = {key: value for key, value in base.items()
               if not key.startswith(SERVER_ENV_PREFIX)}
        env["PYTHONUNBUFFERED"] = "1"
        env.update(extra)
        return env

    def _stop(self, handle: ReplicaHandle, signum: signal.Signals) -> None:
        status_dir = Path(handle.status_dir)
        identity = self._identify(handle)
        if identity == "alive":
            # Record the request first: SIGKILL gives the wrapper no chance to write exit.json.
            write_json(status_dir / STOP_FILE,
                        {"signal": signum.name, "requested_at": time.time()})
            try:
                if signum == signal.SIGTERM:
                    os.kill(handle.pid, signum)  # the wrapper relays it to the group once
                else:
                    os.killpg(handle.pid, signum)
            except ProcessLookupError:
                pass
            except PermissionError as exc:  # a member changed user (setuid): not ours to stop
                log.warning("cannot send %s to replica %s: %s", signum.name, handle.replica_id,
                            exc)
        elif identity == "ended" and not (status_dir / EXIT_FILE).exists():
            _stop_orphaned_command(handle, signum)

    def _child(self, handle: ReplicaHandle) -> subprocess.Popen[bytes] | None:
        with self._lock:
            child = self._children.get(handle.replica_id)
        return child if child is not None and child.pid == handle.pid else None

    def _identify(self, handle: ReplicaHandle) -> Identity:
        """Is the handle's wrapper alive, ended (pid free or a zombie of it), or is the pid
        now another process's?"""
        child = self._child(handle)
        if child is not None:
            return "alive" if child.poll() is None else "ended"
        return identify_process(handle)

    def _reap_finished(self) -> None:
        """Collect exit statuses of finished wrappers so no zombies pile up; they stay in
        ``_children`` until ``poll`` reports them."""
        with self._lock:
            children = list(self._children.values())
        for child in children:
            child.poll()


def _stop_orphaned_command(handle: ReplicaHandle, signum: signal.Signals) -> None:
    """The wrapper died without recording an exit (killed from outside), so its command may
    still run. Signal the group only while that command is in it: a group id whose members
    are all gone may later name an unrelated group (daemons leave groups without leaders)."""
    started = read_started(handle.status_dir)
    if started is None:
        return  # the command never started
    try:
        command = psutil.Process(int(started["child_pid"]))
        ours = (os.getpgid(command.pid) == handle.pid
                and command.create_time() >= handle.create_time - CREATE_TIME_TOLERANCE)
        if ours:
            os.killpg(handle.pid, signum)
    except (psutil.Error, OSError, KeyError, TypeError, ValueError):
        pass


def identify_process(handle: ReplicaHandle) -> Identity:
    """Whether the process behind ``handle`` is alive, has ended, or the pid was reused."""
    try:
        process = psutil.Process(handle.pid)
        if not _same_process(process, handle):
            return "other"
        return "ended" if process.status() == psutil.STATUS_ZOMBIE else "alive"
    except psutil.NoSuchProcess:  # includes ZombieProcess
        return "ended"
    except psutil.AccessDenied:
        return "other"


def read_handle(status_dir: str | Path, replica_id: str | None = None) -> ReplicaHandle | None:
    """The handle of the replica launched into ``status_dir``, if any: from ``handle.json``;
    failing that, given the ``replica_id``, from the wrapper's ``started.json`` (the control
    plane died between starting the wrapper and writing the handle)."""
    status_dir = Path(status_dir)
    saved = read_json(status_dir / HANDLE_FILE)
    if saved is not None:
        try:
            return ReplicaHandle.from_dict(saved)
        except ValueError:
            pass
    started = read_json(status_dir / STARTED_FILE)
    if replica_id is None or started is None or started.get("create_time") is None:
        return None
    return ReplicaHandle(replica_id=replica_id, pid=int(started["pid"]),
                         create_time=float(started["create_time"]), status_dir=str(status_dir))


def read_started(status_dir: str | Path) -> dict[str, Any] | None:
    """The wrapper's ``started.json`` ({"pid", "child_pid", "started_at", "create_time"}),
    or None before the command started."""
    return read_json(Path(status_dir) / STARTED_FILE)


def _same_process(process: psutil.Process, handle: ReplicaHandle) -> bool:
    if abs(process.create_time() - handle.create_time) <= CREATE_TIME_TOLERANCE:
        return True
    # Create times move when the wall clock is stepped (they are boot time + uptime); the
    # wrapper's command line names its status directory, which no other process does.
    try:
        argv = process.cmdline()
    except psutil.Error:
        return False
    return WRAPPER_PATH in argv and handle.status_dir in argv


def final_status(status_dir: Path, wrapper_exit: int | None) -> ReplicaStatus:
    """How an ended replica finished: its wrapper's ``exit.json``, else what the wrapper's own
    exit code tells (shared with the Ray node agent, which runs the same wrapper)."""
    recorded = read_json(status_dir / EXIT_FILE)
    if recorded is not None:
        return _status_from_exit_file(recorded)
    stop = read_json(status_dir / STOP_FILE)
    if stop is not None:
        signum = _signal_number(str(stop.get("signal")))
        if signum is not None:
            return ReplicaStatus("exited", 128 + signum, _killed_reason(signum), signal.Signals(
                signum).name, finished_at=None)
    reason = "process vanished and left no exit status"
    if wrapper_exit is not None and wrapper_exit < 0:
        reason += f" (its supervisor was {_killed_reason(-wrapper_exit)})"
    elif wrapper_exit is not None:
        reason += f" (its supervisor exited with code {wrapper_exit})"
    return ReplicaStatus("lost", None, reason)


def _status_from_exit_file(recorded: Mapping[str, Any]) -> ReplicaStatus:
    exit_code = int(recorded.get("exit_code", -1))
    signal_name = recorded.get("signal")
    finished_at = recorded.get("finished_at")
    if recorded.get("error"):
        reason = f"{recorded['error']} (exit code {exit_code})"
    elif signal_name:
        reason = _killed_reason(exit_code - 128, str(signal_name))
    else:
        reason = f"exited with code {exit_code}"
    if recorded.get("reason"):
        reason += f": {recorded['reason']}"
    return ReplicaStatus("exited", exit_code, reason, signal_name,
                         finished_at=float(finished_at) if finished_at is not None else None)


def _killed_reason(signum: int, name: str | None = None) -> str:
    if name is None:
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"SIG{signum}"
    return f"killed by signal {signum} ({name})"


def _signal_number(name: str) -> int | None:
    try:
        return int(signal.Signals[name])
    except KeyError:
        return None


def _create_time(pid: int) -> float:
    try:
        return psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:  # already gone and reaped: nothing will match it
        return 0.0


def read_json(path: Path) -> dict[str, Any] | None:
    """A status file's content, or None when it is missing or half-written."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    """Replace ``path`` atomically (write a temporary file, then rename)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(payload), encoding="utf-8")
    os.replace(temporary, path)
