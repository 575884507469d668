"""What is in use right now, per node and per queue, for the API and the console."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aip.control import queues as queue_service
from aip.control.snapshot import allocations, build_snapshot, placement_from_json
from aip.control.states import LIVE_REPLICA_STATES, JobState
from aip.scheduler import Node, queue_usage
from aip.store.tables import JobRow, ReplicaRow


def live_replicas(session: Session) -> list[ReplicaRow]:
    return list(session.scalars(select(ReplicaRow).where(
        ReplicaRow.state.in_(tuple(LIVE_REPLICA_STATES)))).all())


def node_usage(session: Session,
               live: list[ReplicaRow] | None = None) -> dict[str, dict[str, Any]]:
    """node -> {cpu_milli, memory_bytes, gpu_milli: {index: milli}, accelerators: {kind: n}},
    from ``live`` when the caller loaded the live replicas already."""
    usage: dict[str, dict[str, Any]] = defaultdict(lambda: {
        "cpu_milli": 0, "memory_bytes": 0, "gpu_milli": Counter(), "accelerators": Counter()})
    for replica in live_replicas(session) if live is None else live:
        placement = placement_from_json(replica.placement)
        node = usage[placement.node]
        node["cpu_milli"] += placement.cpu_milli
        node["memory_bytes"] += placement.memory_bytes
        for index in placement.gpus:
            node["gpu_milli"][index] += placement.gpu_milli_each
        for kind, ids in placement.accelerators.items():
            node["accelerators"][kind] += len(ids)
    return usage


def queue_usages(session: Session, nodes: list[Node],
                 live: list[ReplicaRow] | None = None) -> dict[str, dict[str, int]]:
    if live is None:
        live = live_replicas(session)
    holders = {r.job_id for r in live}
    jobs = {j.id: j for j in session.scalars(select(JobRow).where(JobRow.id.in_(holders)))}
    snapshot = build_snapshot(nodes, queue_service.list_all(session), allocations(jobs, live), [])
    return queue_usage(snapshot)


def job_counts_by_queue(session: Session) -> dict[str, Counter[str]]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    rows = session.execute(select(JobRow.queue, JobRow.state, func.count()).where(
        JobRow.state.in_((JobState.PENDING, JobState.ADMITTED, JobState.RUNNING))).group_by(
        JobRow.queue, JobRow.state))
    for queue, state, count in rows:
        counts[queue][state] += count
    return counts
