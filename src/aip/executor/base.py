"""The Executor plug-in point: how the control plane runs replicas as processes.

The reconciler is the only caller. It launches a replica, stores the returned
``ReplicaHandle`` (as JSON, ``to_dict``), polls it every cycle, and stops it with
``terminate`` followed, after a grace period, by ``kill``. Because the handle is stored, a
restarted control plane polls and stops replicas that an earlier one launched ("adoption").

Implementations: ``aip.executor.local.LocalExecutor`` (processes on this host, handles are
``ReplicaHandle``) and ``aip.executor.ray.RayExecutor`` (replicas on the nodes of a Ray cluster,
with handles of its own). The control plane treats a handle as opaque: it stores
``handle.to_dict()`` and gets it back with ``executor.load_handle(data)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

HANDLE_VERSION = 1

ReplicaState = Literal["running", "exited", "lost"]


@dataclass(frozen=True)
class LaunchRequest:
    """Everything needed to start one replica."""

    replica_id: str  # unique per attempt, e.g. "train-3f2a-worker-0-a1"
    job_id: str
    command: list[str]  # argv, never a shell string
    env: dict[str, str]  # extra environment, applied over the control plane's (minus AIP_*)
    working_dir: str  # created if missing
    log_path: str  # stdout and stderr are appended here
    status_dir: str  # the replica's own directory for status files; created if missing
    node: str | None = None  # the node AIP placed it on; executors that span nodes run it there

    def __post_init__(self) -> None:
        if not self.command or not all(isinstance(arg, str) for arg in self.command):
            raise ValueError(f"replica {self.replica_id}: command must be a non-empty argv list "
                             "of strings")
        if not self.replica_id:
            raise ValueError("replica_id must not be empty")


@dataclass(frozen=True)
class ReplicaHandle:
    """Identifies a launched replica across control-plane restarts; store it with ``to_dict``.

    ``pid`` and ``create_time`` (seconds since the epoch, as ``psutil`` reports it) together
    identify the process, so a pid the OS later reuses is never mistaken for the replica."""

    replica_id: str
    pid: int
    create_time: float
    status_dir: str

    def to_dict(self) -> dict[str, Any]:
        return {"version": HANDLE_VERSION, "replica_id": self.replica_id, "pid": self.pid,
                "create_time": self.create_time, "status_dir": self.status_dir}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReplicaHandle:
        version = data.get("version", HANDLE_VERSION)
        if version != HANDLE_VERSION:
            raise ValueError(f"replica handle version {version!r} is not supported "
                             f"(this AIP reads version {HANDLE_VERSION})")
        try:
            return cls(replica_id=str(data["replica_id"]), pid=int(data["pid"]),
                       create_time=float(data["create_time"]), status_dir=str(data["status_dir"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed replica handle {dict(data)!r}: {exc}") from None


@dataclass(frozen=True)
class ReplicaStatus:
    """What ``poll`` observed.

    ``running``: alive. ``exited``: finished with ``exit_code`` (128 + signal number when a
    signal ended it; ``signal`` then names it). ``lost``: gone without leaving an exit status
    (the host rebooted, or the replica's supervisor was killed from outside AIP).
    ``reason`` is a short sentence for people: "exited with code 3",
    "killed by signal 9 (SIGKILL)", "process vanished and left no exit status"."""

    state: ReplicaState
    exit_code: int | None = None
    reason: str = ""
    signal: str | None = None
    finished_at: float | None = field(default=None, compare=False)
    # When the replica last showed life (output, heartbeat), where the executor sees more than
    # the control plane's own files do (a remote node); None: not known here.
    last_activity: float | None = field(default=None, compare=False)

    @property
    def finished(self) -> bool:
        return self.state != "running"


@runtime_checkable
class Handle(Protocol):
    """What an executor returns from ``launch``: opaque to the control plane but storable."""

    replica_id: str

    def to_dict(self) -> dict[str, Any]: ...


@runtime_checkable
class Executor(Protocol):
    """Runs replicas. All methods are safe to call from one reconciler thread at a time.

    Handle parameters are ``Any`` here: each executor takes the handle type it returns."""

    def load_handle(self, data: Mapping[str, Any]) -> Any:
        """The handle stored as ``to_dict()``; raises ``ValueError`` for a malformed one."""
        ...

    def launch(self, request: LaunchRequest) -> Any:
        """Start the replica and return its handle without waiting for it to run.

        Returns quickly (milliseconds: the process is started, not awaited). Idempotent per
        ``(status_dir, replica_id)``: launching a replica that was already launched into the
        same status directory returns the existing handle and starts nothing, so a control
        plane that died between launch and storing the handle can simply launch again.
        A command that cannot be executed (not found, not executable) is not an error here:
        the replica exits with code 127 or 126 and ``poll`` says why. Raises ``OSError`` only
        for host problems (the log or working directory cannot be created).
        """
        ...

    def poll(self, handle: Any) -> ReplicaStatus:
        """Observe the replica without blocking (a few syscalls and small file reads).

        Works for handles launched by an earlier control-plane process. Once it reports
        ``exited`` or ``lost`` it keeps reporting the same. Never raises for a replica that is
        gone; that is what ``exited``/``lost`` are for.
        """
        ...

    def terminate(self, handle: Any) -> None:
        """Ask the replica to stop: SIGTERM reaches every process of the replica once.

        Returns immediately without waiting for the exit (poll for it). Idempotent; no error
        when the replica is already gone. Never signals a process that merely reuses the
        replica's pid.
        """
        ...

    def kill(self, handle: Any) -> None:
        """Stop the replica now: SIGKILL to every process of the replica.

        Returns immediately; ``poll`` then reports ``exited`` with signal SIGKILL (code 137).
        Idempotent; no error when the replica is already gone; never signals a reused pid.
        """
        ...
