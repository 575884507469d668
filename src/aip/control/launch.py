"""Turning an admission into processes: replica rows, directories, environment, launch.

Directory layout of a job under ``AIP_HOME/jobs/<job id>/``:
    output/                 AIP_OUTPUT_DIR, the default working directory
    checkpoints/            AIP_CHECKPOINT_DIR, stable across restarts and preemptions
    logs/<role>-<i>.log     stdout and stderr of a replica, all attempts appended
    status/<role>-<i>-a<n>/ the wrapper's started.json and exit.json for attempt n
                            (-g<k> added for the k-th restart of that replica alone), and
                            ``heartbeat``, which AIP_HEARTBEAT_FILE names
    runtime/a<n>/           files of the framework runtime (an MPI hostfile) for attempt n

Every replica gets ``PORTS_PER_REPLICA[framework]`` ports of ``server.port_range`` reserved on
its node (``AIP_PORT`` is the first), never held by another live replica of that node; the
framework runtime builds its rendezvous from them (``aip.runtime.frameworks``).
"""

from __future__ import annotations

import json
import logging
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from aip.control import jobs as job_service
from aip.control.snapshot import placement_from_json, placement_to_json
from aip.control.states import LIVE_REPLICA_STATES, JobState, ReplicaState
from aip.control.tracking import job_token_environment
from aip.executor.base import Executor, Handle, LaunchRequest
from aip.executor.environment import default_environment, replica_environment
from aip.runtime.frameworks import PORTS_PER_REPLICA, Member, replica_runtime
from aip.scheduler import Admit, Node
from aip.spec import JobSpec
from aip.store.tables import JobRow, ReplicaRow

log = logging.getLogger("aip.launch")


DEFAULT_PORT_RANGE = (20000, 29999)
PortsInUse = dict[str, set[int]]  # node -> ports held by its live replicas


class Launcher:
    def __init__(self, executor: Executor, jobs_dir: Path, server_url: str | None = None,
                 port_range: tuple[int, int] = DEFAULT_PORT_RANGE) -> None:
        self.executor = executor
        self.jobs_dir = jobs_dir
        self.server_url = server_url
        self.port_range = port_range
        self._port_cursor: dict[str, int] = {}
        self._environment_cache: str | None = None

    def environment_cache_dir(self, spec: JobSpec) -> str | None:
        """Where nodes keep built environments: this control plane's ``AIP_ENV_CACHE`` or
        ``AIP_HOME/envs`` (replicas do not inherit AIP_* variables, so it is passed on)."""
        if spec.environment is None:
            return None
        if self._environment_cache is None:
            from aip.runtime.envs import default_cache_dir

            self._environment_cache = str(default_cache_dir())
        return self._environment_cache

    def job_dir(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    @staticmethod
    def ports_in_use(session: Session) -> PortsInUse:
        """Ports reserved by live replicas, by node: read once per scheduling pass."""
        used: PortsInUse = {}
        for node, ports in session.execute(select(ReplicaRow.node, ReplicaRow.ports).where(
                ReplicaRow.state.in_(tuple(LIVE_REPLICA_STATES)),
                ReplicaRow.ports.is_not(None))).all():
            used.setdefault(node, set()).update(json.loads(ports or "[]"))
        return used

    def reserve_ports(self, node: Node | None, node_name: str, count: int,
                      used: PortsInUse) -> list[int]:
        """``count`` ports of the range that no live replica of the node holds (and, on this
        host, that nothing else is listening on), taken round-robin so a port just given back
        is not handed out again at once."""
        first, last = self.port_range
        size = last - first + 1
        taken = used.setdefault(node_name, set())
        local = node is None or node.address in ("127.0.0.1", "localhost", "::1")
        cursor = self._port_cursor.get(node_name, 0)
        ports: list[int] = []
        for step in range(size):
            port = first + (cursor + step) % size
            if port in taken or (local and not _bindable(port)):
                continue
            ports.append(port)
            taken.add(port)
            if len(ports) == count:
                self._port_cursor[node_name] = (cursor + step + 1) % size
                return ports
        raise RuntimeError(f"no free port left in server.port_range {first}-{last} on node "
                           f"{node_name}: widen the range")

    def admit(self, session: Session, job: JobRow, admit: Admit, now: float, *,
              policy: str, nodes: Mapping[str, Node] | None = None,
              ports_in_use: PortsInUse | None = None) -> None:
        """Record the placement as STARTING replicas of a new attempt, with their ports."""
        nodes = nodes or {}
        used = ports_in_use if ports_in_use is not None else self.ports_in_use(session)
        count = PORTS_PER_REPLICA.get(json.loads(job.spec).get("framework", "none"), 1)
        job.attempt += 1
        job.state = JobState.ADMITTED
        job.admitted_at = now
        job.reason = None
        job.reason_code = None
        job.updated_at = now
        root = self.job_dir(job.id)
        for placement in admit.placements:
            name = f"{placement.role}-{placement.index}"
            session.add(ReplicaRow(
                id=f"{job.id}-{name}-a{job.attempt}", job_id=job.id, attempt=job.attempt,
                role=placement.role, index=placement.index, node=placement.node,
                placement=placement_to_json(placement), state=ReplicaState.STARTING,
                ports=json.dumps(self.reserve_ports(
                    nodes.get(placement.node), placement.node, count, used)),
                status_dir=str(root / "status" / f"{name}-a{job.attempt}"),
                log_path=str(root / "logs" / f"{name}.log")))
        on = sorted({p.node for p in admit.placements})
        job_service.add_event(session, job.id, "Admitted", (
            f"attempt {job.attempt}: {len(admit.placements)} replica(s) on {', '.join(on)}, "
            f"placed by policy {policy}"), now)

    def next_generation(self, session: Session, replica: ReplicaRow) -> ReplicaRow:
        """A STARTING row that restarts ``replica`` alone: same place, same ports."""
        generation = replica.generation + 1
        name = f"{replica.role}-{replica.index}-a{replica.attempt}-g{generation}"
        row = ReplicaRow(
            id=f"{replica.job_id}-{name}", job_id=replica.job_id, attempt=replica.attempt,
            role=replica.role, index=replica.index, node=replica.node,
            placement=replica.placement, ports=replica.ports, generation=generation,
            state=ReplicaState.STARTING,
            status_dir=str(self.job_dir(replica.job_id) / "status" / name),
            log_path=replica.log_path)
        session.add(row)
        return row

    def launch(self, session: Session, job: JobRow, now: float, *,
               nodes: Mapping[str, Node] | None = None,
               replicas: Sequence[ReplicaRow] | None = None) -> None:
        """Start every STARTING replica of the job's current attempt (or just ``replicas``,
        restarted alone while the others run on)."""
        spec = JobSpec.model_validate_json(job.spec)
        gang = job_service.replicas_of(session, job)
        root = self.job_dir(job.id)
        output_dir, checkpoint_dir = root / "output", root / "checkpoints"
        runtime_dir = root / "runtime" / f"a{job.attempt}"
        output_dir.mkdir(parents=True, exist_ok=True)
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        (root / "logs").mkdir(exist_ok=True)
        ranks = _global_ranks(spec)
        members = {r.id: _member(r, ranks, (nodes or {}).get(r.node)) for r in gang}
        # the replicas report metrics with a token of this job alone (aip.control.tracking)
        job_token = job_token_environment(session, job.id, now) if self.server_url else {}
        for replica in replicas if replicas is not None else gang:
            if replica.state != ReplicaState.STARTING:
                continue
            group = spec.replicas[replica.role]
            placement = placement_from_json(replica.placement)
            me = members[replica.id]
            runtime = replica_runtime(
                spec, list(members.values()), me, runtime_dir=str(runtime_dir),
                python=sys.executable, environment_cache_dir=self.environment_cache_dir(spec))
            env = {**default_environment(placement), **spec.env, **group.env, **runtime.env,
                   **replica_environment(
                       job_id=job.id, job_name=job.name, role=replica.role, index=replica.index,
                       num_replicas_in_role=group.count, world_size=spec.total_replicas,
                       global_rank=me.rank, attempt=job.attempt, placement=placement,
                       output_dir=str(output_dir), checkpoint_dir=str(checkpoint_dir),
                       server_url=self.server_url),
                   "AIP_HEARTBEAT_FILE": heartbeat_path(replica.status_dir), **job_token}
            if me.ports:
                env["AIP_PORT"] = str(me.ports[0])
            if job.attempt > 1 or replica.generation:
                restart = f", restart {replica.generation} of this replica" * bool(
                    replica.generation)
                _append_line(replica.log_path, f"----- aip: attempt {job.attempt}{restart} -----")
            request = LaunchRequest(
                replica_id=replica.id, job_id=job.id,
                command=runtime.launch_argv(sys.executable), env=env,
                working_dir=spec.working_dir or str(output_dir), log_path=replica.log_path,
                status_dir=replica.status_dir, node=replica.node)
            try:
                handle = self.executor.launch(request)
            except Exception as exc:  # a launch failure is the replica's failure, not ours
                log.warning("could not start %s: %s", replica.id, exc)
                replica.state = ReplicaState.LOST
                replica.reason = f"could not start: {exc}"
                replica.finished_at = now
                continue
            self.mark_running(replica, handle, now)
        job.updated_at = now
        if job.state == JobState.ADMITTED:
            job.state = JobState.RUNNING
            job.started_at = now
            job_service.add_event(session, job.id, "Started", f"attempt {job.attempt} started",
                                  now)

    @staticmethod
    def mark_running(replica: ReplicaRow, handle: Handle, now: float) -> None:
        replica.state = ReplicaState.RUNNING
        replica.handle = json.dumps(handle.to_dict())
        replica.pid = getattr(handle, "pid", None)
        replica.started_at = now


def heartbeat_path(status_dir: str) -> str:
    """The file a replica touches to say it is alive (``aip.heartbeat()``)."""
    return str(Path(status_dir) / "heartbeat")


def _member(replica: ReplicaRow, ranks: Mapping[str, int], node: Node | None) -> Member:
    placement = placement_from_json(replica.placement)
    return Member(role=replica.role, index=replica.index, rank=ranks[replica.role] + replica.index,
                  node=replica.node, address=node.address if node else "127.0.0.1",
                  ports=tuple(json.loads(replica.ports or "[]")),
                  labels=dict(node.labels) if node else {}, gpus=len(placement.gpus))


def _bindable(port: int) -> bool:
    """Whether nothing on this host listens on ``port`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("0.0.0.0", port))  # a probe of every interface, closed at once
        except OSError:
            return False
    return True


def _global_ranks(spec: JobSpec) -> dict[str, int]:
    offsets, total = {}, 0
    for role, group in spec.replicas.items():
        offsets[role] = total
        total += group.count
    return offsets


def _append_line(path: str, line: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
