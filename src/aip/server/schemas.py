"""Public API schemas (what goes over the wire), separate from storage rows.

Families: ``*Public`` for what the API returns, ``*Page`` for listings. Specs themselves
(``JobSpec``, ``QueueSpec``) are the Create schemas.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from aip.control.snapshot import placement_from_json
from aip.scheduler import Node
from aip.scheduler.topology import domains_spanned
from aip.spec import QueueSpec
from aip.store.tables import EventRow, JobRow, ReplicaRow


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


class ReplicaPublic(BaseModel):
    name: str
    role: str
    index: int
    attempt: int
    node: str
    gpus: list[int]
    gpu_share: float | None
    accelerators: dict[str, list[int]]
    state: str
    pid: int | None
    exit_code: int | None
    reason: str | None
    started_at: str | None
    finished_at: str | None
    ports: list[int]
    restarts: int  # times this replica was restarted alone (restart_policy: replica)


class JobPublic(BaseModel):
    id: str
    name: str
    queue: str
    priority: int
    state: str
    reason: str | None
    reason_code: str | None
    attempt: int
    max_retries: int  # the spec's max_restarts
    restarts: int
    preemptions: int
    exit_code: int | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    output_dir: str
    labels: dict[str, str]
    spec: dict[str, Any]
    replicas: list[ReplicaPublic]
    domains: int | None  # RDMA domains (aip.io/rdma-domain) the replicas span; None: unlabelled


class JobPage(BaseModel):
    items: list[JobPublic]
    total: int
    limit: int
    offset: int


class EventPublic(BaseModel):
    time: str
    type: str
    message: str


class EventList(BaseModel):
    items: list[EventPublic]


class GpuPublic(BaseModel):
    index: int
    model: str
    memory_mib: int
    allocated_milli: int


class NodeAllocated(BaseModel):
    cpu: float
    memory: int
    gpu: float
    accelerators: dict[str, int]


class NodePublic(BaseModel):
    name: str
    cpu: float
    memory: int
    gpus: list[GpuPublic]
    accelerators: dict[str, int]
    labels: dict[str, str]
    schedulable: bool
    allocated: NodeAllocated


class NodeList(BaseModel):
    items: list[NodePublic]


class QueuePublic(BaseModel):
    name: str
    cohort: str | None
    description: str
    quota: dict[str, Any]
    borrowing_limit: dict[str, Any] | None
    usage: dict[str, float]
    pending: int
    running: int


class QueueList(BaseModel):
    items: list[QueuePublic]


def replica_public(row: ReplicaRow) -> ReplicaPublic:
    placement = placement_from_json(row.placement)
    share = placement.gpu_milli_each / 1000 if 0 < placement.gpu_milli_each < 1000 else None
    return ReplicaPublic(
        name=f"{row.role}-{row.index}", role=row.role, index=row.index, attempt=row.attempt,
        node=row.node, gpus=list(placement.gpus), gpu_share=share,
        accelerators={k: list(v) for k, v in placement.accelerators.items()}, state=row.state,
        pid=row.pid, exit_code=row.exit_code, reason=row.reason,
        started_at=iso(row.started_at), finished_at=iso(row.finished_at),
        ports=json.loads(row.ports or "[]"), restarts=row.generation)


def job_public(row: JobRow, replicas: Sequence[ReplicaRow], output_dir: str,
               nodes: Sequence[Node] = ()) -> JobPublic:
    return JobPublic(
        id=row.id, name=row.name, queue=row.queue, priority=row.priority, state=row.state,
        reason=row.reason, reason_code=row.reason_code, attempt=row.attempt,
        max_retries=row.max_retries, restarts=row.restarts, preemptions=row.preemptions,
        exit_code=row.exit_code,
        created_at=iso(row.created_at) or "", started_at=iso(row.started_at),
        finished_at=iso(row.finished_at), output_dir=output_dir,
        labels=json.loads(row.labels), spec=json.loads(row.spec),
        replicas=[replica_public(r) for r in replicas],
        domains=(domains_spanned(nodes, (r.node for r in replicas)) or None)
        if replicas else None)


def event_public(row: EventRow) -> EventPublic:
    return EventPublic(time=iso(row.time) or "", type=row.type, message=row.message)


def node_public(node: Node, used: dict[str, Any]) -> NodePublic:
    gpu_used: dict[int, int] = used.get("gpu_milli", {})
    return NodePublic(
        name=node.name, cpu=node.cpu_milli / 1000, memory=node.memory_bytes,
        gpus=[GpuPublic(index=g.index, model=g.model, memory_mib=g.memory_mib,
                        allocated_milli=gpu_used.get(g.index, 0)) for g in node.gpus],
        accelerators=dict(node.accelerators), labels=dict(node.labels),
        schedulable=node.schedulable,
        allocated=NodeAllocated(
            cpu=used.get("cpu_milli", 0) / 1000, memory=used.get("memory_bytes", 0),
            gpu=sum(gpu_used.values()) / 1000, accelerators=used.get("accelerators", {})))


def queue_public(spec: QueueSpec, usage: dict[str, int], pending: int,
                 running: int) -> QueuePublic:
    human = {key: (value / 1000 if key == "cpu" or key.startswith("gpu") else float(value))
             for key, value in usage.items()}
    return QueuePublic(
        name=spec.name, cohort=spec.cohort, description=spec.description,
        quota=spec.quota.model_dump(exclude_none=True, exclude_defaults=True),
        borrowing_limit=spec.borrowing_limit.model_dump(exclude_none=True, exclude_defaults=True)
        if spec.borrowing_limit else None,
        usage=human, pending=pending, running=running)
