"""``RayExecutor``: replicas on the nodes of a Ray cluster, each on the node AIP's scheduler
chose. Ray carries out the placement; it does not make it.

    cluster = RayCluster("10.0.0.1:6379").connect()   # ray.init(namespace="aip")
    executor = RayExecutor(cluster)                     # the Executor protocol
    cluster.nodes()                                     # the alive nodes, for the scheduler

Replicas are started by a node agent (``aip.executor.ray_supervisor.NodeAgent``): one named,
detached Ray actor per node (``aip-node-<node id>`` in namespace ``aip``), created on the first
launch there and pinned to the node with ``NodeAffinitySchedulingStrategy(soft=False)``. It
asks Ray for no CPU (``num_cpus=0``): AIP has already reserved the replicas' resources, and
Ray's own accounting must not refuse or queue them. ``max_restarts=0``: an agent that dies
takes its replicas with it, and they are lost for AIP's fault-tolerance policy, never started
again behind its back; the next launch on that node creates a new agent. Because the agent is
detached it outlives the control plane; a new control plane finds it by name from the stored
handle.

Logs: the agent keeps each replica's output in a file on its node; every ``poll`` fetches what
was written since the last one (byte offsets) and appends it to ``LaunchRequest.log_path``, the
file ``aip job logs -f`` follows. A finished replica is reported finished only once its output
is drained, so the last lines are never lost.

Control-plane files, in the replica's ``status_dir``::

    handle.json      the RayReplicaHandle, written at launch (makes launch idempotent)
    ray-state.json   {"log_offset", "stop_signal", "final"}: how far the log was copied,
                     whether SIGKILL was asked for, and the final status once known

Once the final status is saved, the agent is told to forget the replica (its node-local files).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aip.errors import AIPError
from aip.executor.base import LaunchRequest, ReplicaStatus
from aip.executor.local import read_json, write_json
from aip.inventory.ray import RayNodeSource

log = logging.getLogger(__name__)

NAMESPACE = "aip"
AGENT_PREFIX = "aip-node-"
RAY_HANDLE_VERSION = 1
HANDLE_KIND = "ray"
HANDLE_FILE = "handle.json"
STATE_FILE = "ray-state.json"
REPORT_WAIT = 0.05  # seconds a poll waits for a fresh report before answering from the last
OUTPUT_CHUNK = 4 * 2**20  # bytes of output per report
MAX_REPORTS_PER_POLL = 8  # while draining a finished replica's output
CONNECT_CHECK_TIMEOUT = 3.0  # seconds to reach the GCS before giving up on an address
INSTALL_HINT = "the ray backend needs Ray: pip install 'aip[bench]' (ray[default]==2.60.0)"


class NodeNotInCluster(OSError):
    """The node AIP placed a replica on is no longer (or not yet) in the Ray cluster."""


@dataclass(frozen=True)
class RayReplicaHandle:
    """A replica run by ``RayExecutor``; stored with ``to_dict`` as any handle is.

    ``actor_name`` names the node agent that runs it; ``node`` is AIP's node name, ``node_id``
    the Ray node it stands for; ``status_dir`` and ``log_path`` are the control plane's paths
    for this replica."""

    replica_id: str
    actor_name: str
    node: str
    node_id: str
    status_dir: str
    log_path: str
    namespace: str = NAMESPACE

    def to_dict(self) -> dict[str, Any]:
        return {"version": RAY_HANDLE_VERSION, "kind": HANDLE_KIND,
                "replica_id": self.replica_id, "actor_name": self.actor_name,
                "namespace": self.namespace, "node": self.node, "node_id": self.node_id,
                "status_dir": self.status_dir, "log_path": self.log_path}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RayReplicaHandle:
        if data.get("kind") != HANDLE_KIND:
            raise ValueError(f"replica handle {dict(data)!r} was not made by the ray backend "
                             "(was the control plane started with another --backend?)")
        version = data.get("version")
        if version != RAY_HANDLE_VERSION:
            raise ValueError(f"ray replica handle version {version!r} is not supported "
                             f"(this AIP reads version {RAY_HANDLE_VERSION})")
        try:
            return cls(replica_id=str(data["replica_id"]), actor_name=str(data["actor_name"]),
                       namespace=str(data.get("namespace", NAMESPACE)),
                       node=str(data["node"]), node_id=str(data["node_id"]),
                       status_dir=str(data["status_dir"]), log_path=str(data["log_path"]))
        except KeyError as exc:
            raise ValueError(f"malformed ray replica handle {dict(data)!r}: no {exc}") from None


class RayCluster:
    """One control plane's connection to a Ray cluster, and the cluster's nodes.

    ``address`` is what ``ray.init`` takes ("10.0.0.1:6379", "ray://...", default "auto": the
    cluster ``ray start`` started on this host, or ``RAY_ADDRESS``)."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address or "auto"
        self.nodes = RayNodeSource(self._list_nodes)

    def connect(self) -> RayCluster:
        ray = import_ray()
        if ray.is_initialized():
            return self
        _check_reachable(self.address)
        try:
            ray.init(address=self.address, namespace=NAMESPACE, log_to_driver=False,
                     logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise AIPError(f"cannot connect to the Ray cluster at {self.address}: {exc} "
                           "(start one with `ray start --head`, or give its address with "
                           "--ray-address)") from None
        log.info("connected to the Ray cluster at %s (%d node(s))", self.address,
                 len(self.nodes.nodes(max_age=0)))
        return self

    def close(self) -> None:
        """Disconnect; the replicas (detached actors) keep running."""
        ray = import_ray()
        if ray.is_initialized():
            ray.shutdown()

    @staticmethod
    def _list_nodes() -> list[dict[str, Any]]:
        return list(import_ray().nodes())


def _check_reachable(address: str, timeout: float = CONNECT_CHECK_TIMEOUT) -> None:
    """Fail fast on a GCS address nothing answers at: ``ray.init`` would retry for minutes.
    "auto" is what Ray makes of it (RAY_ADDRESS, or the cluster last started on this host)."""
    if address == "auto":
        try:
            from ray._private.services import canonicalize_bootstrap_address

            address = canonicalize_bootstrap_address("auto") or "auto"
        except Exception:  # a private helper: if it moved, let ray.init find out
            return
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return  # "ray://...": the Ray client resolves it
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise AIPError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc} (is "
                       "`ray start --head` running there? the address is the head's "
                       "IP:6379)") from None


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise AIPError(INSTALL_HINT) from None
    return ray


@dataclass
class _Replica:
    """What this control plane knows of one replica beyond its handle."""

    log_offset: int = 0
    stop_signal: str | None = None
    final: ReplicaStatus | None = None
    pending: Any = None  # the ObjectRef of a report asked for and not yet received
    last_activity: float | None = None


class RayExecutor:
    """Runs replicas through the node agents of the chosen Ray nodes. See the ``Executor``
    protocol for the contracts; Ray-specific points are in the module docstring."""

    def __init__(self, cluster: RayCluster) -> None:
        self.cluster = cluster
        self._replicas: dict[str, _Replica] = {}  # live replicas polled by this process
        self._agents: dict[str, Any] = {}  # agent actor name -> its Ray ActorHandle
        self._agent_class: Any = None

    def close(self) -> None:
        self.cluster.close()

    # -- Executor -------------------------------------------------------------------------

    def load_handle(self, data: Mapping[str, Any]) -> RayReplicaHandle:
        return RayReplicaHandle.from_dict(data)

    def launch(self, request: LaunchRequest) -> RayReplicaHandle:
        status_dir = Path(request.status_dir)
        existing = _read_handle(status_dir)
        if existing is not None and existing.replica_id == request.replica_id:
            return existing
        node = request.node or request.env.get("AIP_NODE")
        if not node:
            raise ValueError(f"replica {request.replica_id}: no node to run on")
        node_id = self.cluster.nodes.node_id(node) or self.cluster.nodes.node_id(node, max_age=0)
        if node_id is None:
            raise NodeNotInCluster(f"node {node} is not in the Ray cluster (it left)")
        status_dir.mkdir(parents=True, exist_ok=True)
        (status_dir / STATE_FILE).unlink(missing_ok=True)
        Path(request.log_path).parent.mkdir(parents=True, exist_ok=True)
        handle = RayReplicaHandle(
            replica_id=request.replica_id, actor_name=AGENT_PREFIX + node_id, node=node,
            node_id=node_id, status_dir=str(status_dir), log_path=request.log_path)
        # The agent ignores a replica id it already runs: a control plane that died after this
        # call but before writing handle.json launches again, and nothing starts twice.
        self._agent_on(node_id).launch.remote({
            "replica_id": request.replica_id, "command": list(request.command),
            "env": dict(request.env), "working_dir": request.working_dir})
        write_json(status_dir / HANDLE_FILE, handle.to_dict())
        self._replicas[handle.replica_id] = _Replica()
        return handle

    def poll(self, handle: RayReplicaHandle) -> ReplicaStatus:
        replica = self._replica(handle)
        if replica.final is not None:
            return replica.final
        for _ in range(MAX_REPORTS_PER_POLL):
            try:
                report = self._next_report(handle, replica)
            except _ActorGone as gone:
                return self._finish(handle, replica, self._gone_status(handle, replica, gone))
            if report is None:  # not answered yet: the agent is starting, or busy
                break
            self._take_output(handle, replica, report)
            final = report["final"]
            if final is None:
                break
            if replica.log_offset >= int(report["size"]):
                return self._finish(handle, replica, _status_from_dict(final))
        return ReplicaStatus("running", reason="running", last_activity=replica.last_activity)

    def terminate(self, handle: RayReplicaHandle) -> None:
        replica = self._replica(handle)
        if replica.final is None:
            self._send_signal(handle, "SIGTERM")

    def kill(self, handle: RayReplicaHandle) -> None:
        replica = self._replica(handle)
        if replica.final is not None:
            return
        replica.stop_signal = "SIGKILL"
        _save_state(handle, replica)
        self._send_signal(handle, "SIGKILL")

    # -- helpers --------------------------------------------------------------------------

    def _agent_on(self, node_id: str) -> Any:
        """The node's agent, created if it has none (``get_if_exists``: one per node even when
        two control planes race)."""
        name = AGENT_PREFIX + node_id
        agent = self._agents.get(name)
        if agent is not None:
            return agent
        ray = import_ray()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        if self._agent_class is None:
            from aip.executor.ray_supervisor import NodeAgent

            self._agent_class = ray.remote(NodeAgent)
        agent = self._agents[name] = self._agent_class.options(
            name=name, namespace=NAMESPACE, get_if_exists=True, lifetime="detached",
            num_cpus=0, max_restarts=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
        ).remote()
        return agent

    def _replica(self, handle: RayReplicaHandle) -> _Replica:
        replica = self._replicas.get(handle.replica_id)
        if replica is None:  # first poll by this process: pick up where the last one was
            replica = _load_state(handle)
            if replica.final is None:
                self._replicas[handle.replica_id] = replica
        return replica

    def _agent_of(self, handle: RayReplicaHandle) -> Any:
        agent = self._agents.get(handle.actor_name)
        if agent is None:
            ray = import_ray()
            try:
                agent = ray.get_actor(handle.actor_name, namespace=handle.namespace)
            except ValueError as exc:  # no such actor: it died, or was never created
                raise _ActorGone(exc) from None
            self._agents[handle.actor_name] = agent
        return agent

    def _next_report(self, handle: RayReplicaHandle, replica: _Replica) -> dict[str, Any] | None:
        ray = import_ray()
        from ray.exceptions import (
            ActorUnavailableError,
            ActorUnschedulableError,
            RayActorError,
            RayTaskError,
        )

        if replica.pending is None:
            replica.pending = self._agent_of(handle).report.remote(
                handle.replica_id, replica.log_offset, OUTPUT_CHUNK)
        ready, _ = ray.wait([replica.pending], timeout=REPORT_WAIT)
        if not ready:
            return None
        reference, replica.pending = replica.pending, None
        try:
            report: dict[str, Any] = ray.get(reference)
        except ActorUnavailableError:  # unreachable for now (network, restarting raylet)
            return None
        except (RayActorError, ActorUnschedulableError) as exc:
            self._agents.pop(handle.actor_name, None)  # the next launch there makes a new one
            raise _ActorGone(exc) from None
        except RayTaskError:
            log.exception("replica %s: its node agent failed to report", handle.replica_id)
            return None
        if report.get("unknown"):
            raise _ActorGone(None, unknown=True)
        return report

    def _take_output(self, handle: RayReplicaHandle, replica: _Replica,
                     report: Mapping[str, Any]) -> None:
        if report.get("last_activity") is not None:
            replica.last_activity = float(report["last_activity"])
        chunk: bytes = report["output"]
        if not chunk:
            return
        # Append, then record the offset: a crash in between repeats a chunk, never loses one.
        with open(handle.log_path, "ab") as log_file:
            log_file.write(chunk)
        replica.log_offset += len(chunk)
        _save_state(handle, replica)

    def _gone_status(self, handle: RayReplicaHandle, replica: _Replica,
                     gone: _ActorGone) -> ReplicaStatus:
        if replica.stop_signal == "SIGKILL":
            return ReplicaStatus("exited", 137, "killed by signal 9 (SIGKILL)", "SIGKILL",
                                 finished_at=time.time())
        cause = gone.cause
        node_left = (getattr(cause, "preempted", False)
                     or "its node has died" in str(cause)
                     or type(cause).__name__ == "ActorUnschedulableError"
                     or not self.cluster.nodes.is_alive(handle.node_id, max_age=0))
        if node_left:
            reason = f"node {handle.node} left the Ray cluster"
        elif gone.unknown:
            reason = (f"the node agent on {handle.node} was replaced and no longer knows it "
                      "(the replica ended with the old agent)")
        else:
            reason = (f"its node agent on {handle.node} ({handle.actor_name}) died: "
                      f"{_summary(cause)}")
        return ReplicaStatus("lost", None, reason, finished_at=time.time())

    def _finish(self, handle: RayReplicaHandle, replica: _Replica,
                status: ReplicaStatus) -> ReplicaStatus:
        replica.final = status
        replica.pending = None
        _save_state(handle, replica)
        agent = self._agents.get(handle.actor_name)
        if agent is not None:
            try:
                agent.forget.remote(handle.replica_id)  # its node-local files go
            except Exception as exc:
                log.debug("replica %s: could not tell its node agent to forget it: %s",
                          handle.replica_id, exc)
        self._replicas.pop(handle.replica_id, None)  # ray-state.json answers from now on
        return status

    def _send_signal(self, handle: RayReplicaHandle, name: str) -> None:
        try:
            self._agent_of(handle).signal.remote(handle.replica_id, name)
        except _ActorGone:
            pass  # nothing left to stop; poll reports how it ended


class _ActorGone(Exception):
    """The agent cannot report on the replica: it died (``cause``), or does not know it."""

    def __init__(self, cause: BaseException | None, *, unknown: bool = False) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.unknown = unknown


def _status_from_dict(final: Mapping[str, Any]) -> ReplicaStatus:
    state = final.get("state", "lost")
    return ReplicaStatus(
        "exited" if state == "exited" else "lost",
        exit_code=final.get("exit_code"), reason=str(final.get("reason", "")),
        signal=final.get("signal"), finished_at=final.get("finished_at"))


def _status_to_dict(status: ReplicaStatus) -> dict[str, Any]:
    return {"state": status.state, "exit_code": status.exit_code, "reason": status.reason,
            "signal": status.signal, "finished_at": status.finished_at}


def _summary(cause: BaseException | None) -> str:
    """The last informative line of a Ray error (its messages run over many lines)."""
    if cause is None:
        return "it no longer exists"
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    return (lines[-1] if lines else type(cause).__name__)[:300]


def _read_handle(status_dir: Path) -> RayReplicaHandle | None:
    data = read_json(status_dir / HANDLE_FILE)
    if data is None:
        return None
    try:
        return RayReplicaHandle.from_dict(data)
    except ValueError:
        return None


def _load_state(handle: RayReplicaHandle) -> _Replica:
    data = read_json(Path(handle.status_dir) / STATE_FILE) or {}
    final = data.get("final")
    return _Replica(log_offset=int(data.get("log_offset", 0)),
                    stop_signal=data.get("stop_signal"),
                    final=_status_from_dict(final) if isinstance(final, dict) else None)


def _save_state(handle: RayReplicaHandle, replica: _Replica) -> None:
    final = None if replica.final is None else _status_to_dict(replica.final)
    write_json(Path(handle.status_dir) / STATE_FILE, {
        "log_offset": replica.log_offset, "stop_signal": replica.stop_signal, "final": final})
