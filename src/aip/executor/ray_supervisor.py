"""The node side of the Ray backend: one ``NodeAgent`` actor per Ray node supervises the
replicas AIP placed there.

``RayExecutor`` (``aip.executor.ray``) creates the agent of a node on its first launch there: a
named, detached actor (``aip-node-<node id>``) pinned to the node. The agent starts each
replica as ``LocalExecutor`` does: under ``aip/executor/wrapper.py``, in a session of its own,
the wrapper writing ``started.json``/``exit.json`` into a node-local directory
(``$TMPDIR/aip-<uid>/replicas/<replica id>/``) and the command's stdout and stderr going to
``output.log`` there. The control plane then calls, for each replica and every poll:

    report(replica_id, offset, max_bytes) -> {"final": None | {...}, "output": bytes,
                                              "size": int, "last_activity": float | None}

``final`` is read before the output, so output written before the end is in ``output`` once
``final`` is set (the executor reads until ``size``). ``signal(replica_id, "SIGTERM"|"SIGKILL")``
stops the replica's process group as ``LocalExecutor`` does; ``forget(replica_id)`` removes its
files once the control plane has its outcome. A replica the agent does not know (the agent was
replaced) reports ``{"unknown": True}``.

One long-lived agent per node rather than an actor per replica: a Ray actor costs a worker
process, which takes seconds to start on a busy machine; a replica started by a running agent
takes milliseconds. The agent's methods run one at a time, in the order the control plane
called them (launch before report before signal).

If the agent's process dies (its node stops, Ray kills the worker), its replicas must not run
on unsupervised: each wrapper is started through a tiny shim that asks Linux to send it SIGUSR2
when its parent dies (``PR_SET_PDEATHSIG``) and answers that by SIGKILLing the whole group.
The parent is the thread that started it, so a dedicated thread starts each wrapper and stays
until it ends.

Nodes need the ``aip`` package (the same version as the control plane), as they need the same
Ray and Python: the agent class and the wrapper are imported from it there.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from aip.executor.local import (
    SERVER_ENV_PREFIX,
    STOP_FILE,
    WRAPPER_FLAGS,
    WRAPPER_PATH,
    final_status,
    write_json,
)

OUTPUT_FILE = "output.log"
HEARTBEAT_ENV = "AIP_HEARTBEAT_FILE"
RAY_NODE_ID_ENV = "AIP_RAY_NODE_ID"
# Set by Ray in its worker processes, about that worker: wrong for a replica (a replica that
# runs Ray itself must not take them for its own).
RAY_WORKER_VARIABLES = frozenset({"RAY_RAYLET_PID", "RAY_JOB_ID", "RAY_CLIENT_MODE",
                                  "RAY_LD_PRELOAD_ON_WORKERS"})
STOP_SIGNALS = {"SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL}
# After a replica ended, how long its outcome and files wait for the control plane to collect
# them and call forget(): a control plane that stopped asking, or is gone for good, must not
# leave them behind forever.
LINGER_SECONDS = 600.0

# Runs as ``python -I -S -c SHIM AGENT_PID WRAPPER_PATH STATUS_DIR -- COMMAND...``.
# PR_SET_PDEATHSIG (1) applies to this process alone; the wrapper runs in it (exec of its
# source, not a new process), so the wrapper's group dies with the agent.
PARENT_DEATH_SHIM = """
import _signal, os, sys
def _stop_group(signum, frame):
    os.killpg(0, _signal.SIGKILL)
_signal.signal(_signal.SIGUSR2, _stop_group)
try:
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, _signal.SIGUSR2)
except (AttributeError, OSError):
    pass  # not Linux: the replica may outlive a crashed agent
if os.getppid() != int(sys.argv[1]):
    _stop_group(0, None)  # the agent died before the request took effect
sys.argv = sys.argv[2:]
with open(sys.argv[0], encoding="utf-8") as source:
    code = compile(source.read(), sys.argv[0], "exec")
exec(code, {"__name__": "__main__", "__file__": sys.argv[0]})
"""


class NodeAgent:
    """The actor on one node: its replicas by id. See the module docstring."""

    def __init__(self, linger: float = LINGER_SECONDS) -> None:
        self._linger = linger
        self._lock = threading.Lock()
        self._replicas: dict[str, ReplicaSupervisor] = {}
        self._failed: dict[str, dict[str, Any]] = {}  # replicas that could not start

    def launch(self, launch: Mapping[str, Any]) -> None:
        """Start a replica: {"replica_id", "command", "env", "working_dir"}. Idempotent per
        replica id. A replica that cannot start (its working directory cannot be created)
        reports itself lost with the reason."""
        replica_id = str(launch["replica_id"])
        with self._lock:
            if replica_id in self._replicas or replica_id in self._failed:
                return
        try:
            supervisor = ReplicaSupervisor(
                launch, linger=self._linger, on_expired=lambda: self.forget(replica_id))
        except Exception as exc:
            with self._lock:
                self._failed[replica_id] = {
                    "state": "lost", "exit_code": None, "signal": None, "finished_at": None,
                    "reason": f"could not start on its node: {exc}"}
            return
        with self._lock:
            self._replicas[replica_id] = supervisor

    def report(self, replica_id: str, offset: int, max_bytes: int) -> dict[str, Any]:
        with self._lock:
            supervisor = self._replicas.get(replica_id)
            failed = self._failed.get(replica_id)
        if supervisor is not None:
            return supervisor.report(offset, max_bytes)
        if failed is not None:
            return {"final": failed, "output": b"", "size": 0, "last_activity": None}
        return {"unknown": True}

    def signal(self, replica_id: str, name: str) -> None:
        with self._lock:
            supervisor = self._replicas.get(replica_id)
        if supervisor is not None:
            supervisor.signal(name)

    def forget(self, replica_id: str) -> None:
        """The control plane has the outcome: stop what may still run, remove the files.
        Under the lock, so a replica is listed until its files are gone and a relaunch of
        the same id cannot have its new files removed by this."""
        with self._lock:
            supervisor = self._replicas.pop(replica_id, None)
            self._failed.pop(replica_id, None)
            if supervisor is not None:
                supervisor.close()

    def replica_ids(self) -> list[str]:
        with self._lock:
            return sorted([*self._replicas, *self._failed])


def node_directory(replica_id: str) -> Path:
    """Where the agent keeps the files of ``replica_id`` on its node."""
    return Path(tempfile.gettempdir()) / f"aip-{os.getuid()}" / "replicas" / replica_id


class ReplicaSupervisor:
    """One replica on this node: started at creation, then reported on. ``on_expired`` is
    called ``linger`` seconds after the replica ended (from another thread)."""

    def __init__(self, launch: Mapping[str, Any], *, linger: float = LINGER_SECONDS,
                 on_expired: Callable[[], None] | None = None) -> None:
        self._linger = linger
        self._on_expired = on_expired
        self._directory = node_directory(str(launch["replica_id"]))
        shutil.rmtree(self._directory, ignore_errors=True)  # a stale earlier run's files
        self._directory.mkdir(parents=True)
        self._output = self._directory / OUTPUT_FILE
        env = _environment(launch["env"])
        self._heartbeat = env.get(HEARTBEAT_ENV)
        self._lock = threading.Lock()
        self._wrapper: subprocess.Popen[bytes] | None = None
        self._final: dict[str, Any] | None = None
        self._start_error: BaseException | None = None
        started = threading.Event()
        threading.Thread(target=self._supervise, name="aip-replica", daemon=True,
                         args=(list(launch["command"]), env, str(launch["working_dir"]),
                               started)).start()
        started.wait()
        if self._start_error is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            raise self._start_error

    def report(self, offset: int, max_bytes: int) -> dict[str, Any]:
        with self._lock:
            final = self._final
        size = _size(self._output)
        return {"final": final, "output": _read(self._output, offset, max_bytes),
                "size": size, "last_activity": self._last_activity()}

    def signal(self, name: str) -> None:
        """Send SIGTERM (relayed once to the replica's group by the wrapper) or SIGKILL (to the
        whole group); nothing when the replica has ended."""
        signum = STOP_SIGNALS[name]
        with self._lock:
            wrapper = self._wrapper
            if wrapper is None or wrapper.returncode is not None:
                return
            # Record it first: SIGKILL leaves the wrapper no chance to write exit.json.
            write_json(self._directory / STOP_FILE, {"signal": name})
            try:
                if signum == signal.SIGTERM:
                    os.kill(wrapper.pid, signum)
                else:
                    os.killpg(wrapper.pid, signum)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        self.signal("SIGKILL")
        shutil.rmtree(self._directory, ignore_errors=True)

    # -- helpers ----------------------------------------------------------------------------

    def _supervise(self, command: list[str], env: dict[str, str], working_dir: str,
                   started: threading.Event) -> None:
        try:
            Path(working_dir).mkdir(parents=True, exist_ok=True)
            argv = [sys.executable, *WRAPPER_FLAGS, "-c", PARENT_DEATH_SHIM, str(os.getpid()),
                    WRAPPER_PATH, str(self._directory), "--", *command]
            with open(self._output, "ab") as output:
                wrapper = subprocess.Popen(
                    argv, cwd=working_dir, env=env, stdin=subprocess.DEVNULL, stdout=output,
                    stderr=output, start_new_session=True, close_fds=True)
        except BaseException as exc:
            self._start_error = exc
            started.set()
            return
        with self._lock:
            self._wrapper = wrapper
        started.set()
        wrapper_exit = wrapper.wait()  # this thread is the wrapper's parent until it ends
        status = final_status(self._directory, wrapper_exit)
        with self._lock:
            self._final = {"state": status.state, "exit_code": status.exit_code,
                           "reason": status.reason, "signal": status.signal,
                           "finished_at": status.finished_at}
        if self._on_expired is not None:
            timer = threading.Timer(self._linger, self._on_expired)
            timer.daemon = True
            timer.start()

    def _last_activity(self) -> float | None:
        times = [_mtime(str(self._output))]
        if self._heartbeat:
            times.append(_mtime(self._heartbeat))
        known = [moment for moment in times if moment is not None]
        return max(known) if known else None


def _environment(extra: Mapping[str, str]) -> dict[str, str]:
    """What the replica sees: the node's environment as ``LocalExecutor`` passes it on (no
    AIP_* variables, ``PYTHONUNBUFFERED=1``) without what Ray sets for its own workers, plus
    ``AIP_RAY_NODE_ID`` (the Ray node it runs on), plus the replica's own."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(SERVER_ENV_PREFIX) and key not in RAY_WORKER_VARIABLES}
    env["PYTHONUNBUFFERED"] = "1"
    env[RAY_NODE_ID_ENV] = _ray_node_id()
    env.update(extra)
    return env


def _ray_node_id() -> str:
    import ray

    return str(ray.get_runtime_context().get_node_id())


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read(path: Path, offset: int, max_bytes: int) -> bytes:
    try:
        with open(path, "rb") as source:
            source.seek(offset)
            return source.read(max_bytes)
    except OSError:
        return b""


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None
