"""Translation between the store's rows and the pure scheduler's vocabulary.

The control plane reads rows, turns them into an immutable ``aip.scheduler.Snapshot``, and
writes the scheduler's decisions back. Nothing here does I/O itself.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from aip.scheduler import (
    Allocation,
    Node,
    PendingJob,
    Queue,
    ReplicaPlacement,
    ReplicaRequest,
    RoleRequest,
    Snapshot,
)
from aip.spec import JobSpec, QueueSpec, Resources
from aip.store.tables import JobRow, QueueRow, ReplicaRow


def replica_request(resources: Resources) -> ReplicaRequest:
    return ReplicaRequest(
        cpu_milli=resources.cpu_milli,
        memory_bytes=resources.memory,
        gpu_milli=resources.gpu_milli,
        gpu_types=frozenset(resources.gpu_type),
        accelerators=tuple(sorted(resources.accelerators.items())),
    )


def role_requests(spec: JobSpec) -> tuple[RoleRequest, ...]:
    return tuple(
        RoleRequest(role=role, count=group.count, request=replica_request(group.resources))
        for role, group in spec.replicas.items())


def pending_job(row: JobRow, roles: tuple[RoleRequest, ...],
                topology: str = "none") -> PendingJob:
    return PendingJob(job_id=row.id, queue=row.queue, priority=row.priority, seq=row.seq,
                      roles=roles, topology=topology)


def scheduler_queue(spec: QueueSpec) -> Queue:
    return Queue(
        name=spec.name,
        cohort=spec.cohort,
        nominal=spec.quota.flat(),
        borrowing_limit=spec.borrowing_limit.flat() if spec.borrowing_limit else None,
    )


def queue_spec(row: QueueRow) -> QueueSpec:
    return QueueSpec.model_validate_json(row.spec)


def placement_to_json(placement: ReplicaPlacement) -> str:
    return json.dumps(dataclasses.asdict(placement))


def placement_from_json(text: str) -> ReplicaPlacement:
    data: dict[str, Any] = json.loads(text)
    data["gpus"] = tuple(data.get("gpus", ()))
    data["accelerators"] = {k: tuple(v) for k, v in data.get("accelerators", {}).items()}
    return ReplicaPlacement(**data)


def allocations(jobs: dict[str, JobRow], live_replicas: Iterable[ReplicaRow]) -> list[Allocation]:
    """Group live replicas by job. A job already being stopped is not offered as a victim."""
    by_job: dict[str, list[ReplicaPlacement]] = defaultdict(list)
    for replica in live_replicas:
        by_job[replica.job_id].append(placement_from_json(replica.placement))
    result = []
    for job_id, placements in by_job.items():
        job = jobs[job_id]
        result.append(Allocation(
            job_id=job_id, queue=job.queue, priority=job.priority,
            seq=int((job.admitted_at or job.created_at) * 1_000_000),
            placements=tuple(placements), preemptible=job.stop_reason is None))
    return result


def build_snapshot(
    nodes: Sequence[Node], queues: Iterable[QueueSpec], running: Sequence[Allocation],
    pending: Sequence[PendingJob],
) -> Snapshot:
    return Snapshot(nodes=tuple(nodes), queues=tuple(scheduler_queue(q) for q in queues),
                    running=tuple(running), pending=tuple(pending))
