"""Job services: what the API does to jobs, each a function over a store session.

Routes stay thin: they resolve the session and call one function here. Side effects on
processes never happen here; they are the reconciler's (it is woken after each change).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, insert, or_, select
from sqlalchemy.orm import Session

from aip.control.snapshot import pending_job, role_requests
from aip.control.states import FINAL_STATES, LIVE_REPLICA_STATES, JobState
from aip.errors import Conflict, InvalidSpec, NotFound, Unschedulable
from aip.scheduler import Node, infeasible_reason
from aip.spec import JobSpec
from aip.store.tables import EventRow, JobRow, QueueRow, ReplicaRow


@dataclass(frozen=True)
class JobFilter:
    states: Sequence[str] = ()
    queue: str | None = None
    text: str | None = None
    labels: dict[str, str] | None = None
    limit: int = 50
    offset: int = 0


def submit(session: Session, spec: JobSpec, nodes: Sequence[Node], now: float) -> JobRow:
    """Store a new PENDING job, after rejecting what could never run. The hot path of the
    API: two plain INSERTs, no ORM flush."""
    _require_queue(session, spec.queue)
    values = {
        "id": f"{spec.name}-{secrets.token_hex(4)}", "name": spec.name, "queue": spec.queue,
        "priority": spec.priority, "state": JobState.PENDING.value,
        "reason": "waiting to be scheduled", "spec": spec.model_dump_json(),
        "labels": json.dumps(spec.labels), "attempt": 0, "max_retries": spec.max_restarts,
        "preemptions": 0, "restarts": 0, "created_at": now, "updated_at": now, "kill_sent": False}
    row = JobRow(**values)  # transient: what the caller presents
    reason = infeasible_reason(nodes, pending_job(row, role_requests(spec), spec.topology))
    if reason is not None:
        raise Unschedulable(f"job {spec.name!r} can never run here: {reason}",
                            fields={"replicas": reason})
    tables = JobRow.metadata.tables
    session.execute(insert(tables["jobs"]), [values])
    session.execute(insert(tables["events"]), [{
        "job_id": row.id, "time": now, "type": "Submitted",
        "message": f"submitted to queue {spec.queue}"}])
    return row


def get(session: Session, job_id: str) -> JobRow:
    row = session.scalar(select(JobRow).where(JobRow.id == job_id))
    if row is None:
        raise NotFound(f"no job {job_id!r}: list jobs with `aip job list`",
                       fields={"job_id": "unknown job id"})
    return row


def replicas_of(session: Session, job: JobRow) -> list[ReplicaRow]:
    """Replicas of the job's latest attempt, in role/index order: for a replica restarted on
    its own (``restart_policy: replica``), only its newest generation."""
    rows = session.scalars(select(ReplicaRow).where(
        ReplicaRow.job_id == job.id, ReplicaRow.attempt == job.attempt)).all()
    roles = list(json.loads(job.spec)["replicas"])
    return sorted(newest_generations(rows),
                  key=lambda r: (roles.index(r.role) if r.role in roles else 99, r.index))


def newest_generations(rows: Iterable[ReplicaRow]) -> list[ReplicaRow]:
    """Of the rows of one attempt, each replica's newest generation."""
    newest: dict[tuple[str, str, int], ReplicaRow] = {}
    for row in rows:
        key = (row.job_id, row.role, row.index)
        if key not in newest or row.generation > newest[key].generation:
            newest[key] = row
    return list(newest.values())


def list_jobs(session: Session, where: JobFilter) -> tuple[list[JobRow], int]:
    query = select(JobRow)
    if where.states:
        query = query.where(JobRow.state.in_([s.upper() for s in where.states]))
    if where.queue:
        query = query.where(JobRow.queue == where.queue)
    if where.text:
        pattern = f"%{where.text}%"
        query = query.where(or_(JobRow.name.like(pattern), JobRow.id.like(pattern)))
    for key, value in (where.labels or {}).items():
        query = query.where(JobRow.labels.like(f"%{json.dumps({key: value})[1:-1]}%"))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(JobRow.seq.desc()).limit(where.limit).offset(where.offset)).all()
    return list(rows), total


def request_cancel(session: Session, job_id: str, now: float) -> JobRow:
    """Cancel at once if nothing runs; otherwise ask the reconciler to stop the replicas."""
    job = get(session, job_id)
    if job.state in FINAL_STATES:
        raise Conflict(f"job {job_id} already {job.state}; nothing to cancel")
    has_live = session.scalar(select(func.count()).select_from(ReplicaRow).where(
        ReplicaRow.job_id == job.id, ReplicaRow.state.in_(tuple(LIVE_REPLICA_STATES)))) or 0
    if not has_live and job.state in (JobState.PENDING, JobState.RETRYING, JobState.PREEMPTED):
        finish(job, JobState.CANCELLED, "cancelled by user", now)
        add_event(session, job.id, "Cancelled", "cancelled by user", now)
        return job
    job.stop_reason = "cancel"
    job.stop_message = "cancelled by user"
    job.stop_requested_at = None
    job.kill_sent = False
    job.reason = "cancelling: stopping replicas"
    job.updated_at = now
    add_event(session, job.id, "Cancelling", "cancel requested; stopping replicas", now)
    return job


def finish(job: JobRow, state: JobState, reason: str | None, now: float,
           exit_code: int | None = None) -> None:
    job.state = state
    job.reason = reason
    job.reason_code = None
    job.finished_at = now
    job.updated_at = now
    if exit_code is not None:
        job.exit_code = exit_code


def events(session: Session, job_id: str) -> list[EventRow]:
    get(session, job_id)
    return list(session.scalars(
        select(EventRow).where(EventRow.job_id == job_id).order_by(EventRow.id)).all())


def add_event(session: Session, job_id: str, kind: str, message: str, now: float) -> None:
    session.add(EventRow(job_id=job_id, time=now, type=kind, message=message))


def _require_queue(session: Session, name: str) -> None:
    if session.scalar(select(QueueRow.name).where(QueueRow.name == name)) is not None:
        return
    known = ", ".join(session.scalars(select(QueueRow.name).order_by(QueueRow.name)).all())
    raise InvalidSpec(
        f"queue {name!r} does not exist: create it with `aip queue create {name}` "
        f"or submit to one of: {known or 'none'}",
        fields={"queue": f"unknown queue {name!r}"})
