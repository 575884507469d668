"""Turning an admission into processes: replica rows, directories, environment, launch.

Directory layout of a job under ``AIP_HOME/jobs/<job id>/``:
    output/                 AIP_OUTPUT_DIR, the default working directory
    checkpoints/            AIP_CHECKPOINT_DIR, stable across retries and preemptions
    logs/<role>-<i>.log     stdout and stderr of a replica, all attempts appended
    status/<role>-<i>-a<n>/ the wrapper's started.json and exit.json for attempt n
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from sqlalchemy.orm import Session

from aip.control import jobs as job_service
from aip.control.snapshot import placement_from_json, placement_to_json
from aip.control.states import JobState, ReplicaState
from aip.executor.base import Executor, LaunchRequest, ReplicaHandle
from aip.executor.environment import default_environment, replica_environment
from aip.scheduler import Admit
from aip.spec import JobSpec
from aip.store.tables import JobRow, ReplicaRow

log = logging.getLogger("aip.launch")


class Launcher:
    def __init__(self, executor: Executor, jobs_dir: Path, server_url: str | None = None) -> None:
        self.executor = executor
        self.jobs_dir = jobs_dir
        self.server_url = server_url

    def job_dir(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    def admit(self, session: Session, job: JobRow, admit: Admit, now: float, *,
              policy: str) -> None:
        """Record the placement as STARTING replicas of a new attempt."""
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
                status_dir=str(root / "status" / f"{name}-a{job.attempt}"),
                log_path=str(root / "logs" / f"{name}.log")))
        nodes = sorted({p.node for p in admit.placements})
        job_service.add_event(session, job.id, "Admitted", (
            f"attempt {job.attempt}: {len(admit.placements)} replica(s) on {', '.join(nodes)}, "
            f"placed by policy {policy}"), now)

    def launch(self, session: Session, job: JobRow, now: float) -> None:
        """Start every STARTING replica of the job's current attempt."""
        spec = JobSpec.model_validate_json(job.spec)
        replicas = job_service.replicas_of(session, job)
        root = self.job_dir(job.id)
        output_dir, checkpoint_dir = root / "output", root / "checkpoints"
        output_dir.mkdir(parents=True, exist_ok=True)
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        (root / "logs").mkdir(exist_ok=True)
        ranks = _global_ranks(spec)
        for replica in replicas:
            if replica.state != ReplicaState.STARTING:
                continue
            group = spec.replicas[replica.role]
            placement = placement_from_json(replica.placement)
            env = {**default_environment(placement), **spec.env, **group.env, **replica_environment(
                job_id=job.id, job_name=job.name, role=replica.role, index=replica.index,
                num_replicas_in_role=group.count, world_size=spec.total_replicas,
                global_rank=ranks[replica.role] + replica.index, attempt=job.attempt,
                placement=placement, output_dir=str(output_dir),
                checkpoint_dir=str(checkpoint_dir), server_url=self.server_url)}
            if job.attempt > 1:
                _append_line(replica.log_path, f"----- aip: attempt {job.attempt} -----")
            request = LaunchRequest(
                replica_id=replica.id, job_id=job.id, command=list(group.command), env=env,
                working_dir=spec.working_dir or str(output_dir), log_path=replica.log_path,
                status_dir=replica.status_dir)
            try:
                handle = self.executor.launch(request)
            except Exception as exc:  # a launch failure is the replica's failure, not ours
                log.warning("could not start %s: %s", replica.id, exc)
                replica.state = ReplicaState.LOST
                replica.reason = f"could not start: {exc}"
                replica.finished_at = now
                continue
            self.mark_running(replica, handle, now)
        job.state = JobState.RUNNING
        job.started_at = now
        job.updated_at = now
        job_service.add_event(session, job.id, "Started", f"attempt {job.attempt} started", now)

    @staticmethod
    def mark_running(replica: ReplicaRow, handle: ReplicaHandle, now: float) -> None:
        replica.state = ReplicaState.RUNNING
        replica.handle = json.dumps(handle.to_dict())
        replica.pid = handle.pid
        replica.started_at = now


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
