"""What the console's pages show, read from the store in few, bounded queries.

The numbers come from the same services as the REST API (``node_usage``, ``queue_usages``,
``job_service.list_jobs``), so the overview always agrees with ``aip node list`` and
``GET /api/v1/...``. Listings are paginated in SQL: a page reads its rows and one count,
never the whole jobs table.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aip.control import jobs as job_service
from aip.control import queues as queue_service
from aip.control.platform import Platform
from aip.control.snapshot import placement_from_json
from aip.control.states import JobState
from aip.control.usage import job_counts_by_queue, live_replicas, node_usage, queue_usages
from aip.store.tables import EventRow, JobRow, ReplicaRow

STATES = [state.value for state in JobState]
PAGE_SIZE = 50


@dataclass
class Meter:
    """One resource: what exists and what is allocated, in display units."""

    label: str
    total: float
    used: float
    unit: str = ""

    @property
    def percent(self) -> float:
        return 0.0 if self.total <= 0 else min(100.0, 100.0 * self.used / self.total)


@dataclass
class GpuModel:
    model: str
    count: int = 0
    allocated: float = 0.0  # GPUs' worth, shares summed
    whole: int = 0  # GPUs fully allocated
    shared: int = 0  # GPUs partly allocated (fractional jobs)


@dataclass
class Overview:
    meters: list[Meter]
    gpus: list[GpuModel]
    accelerators: list[Meter]
    states: dict[str, int]
    total_jobs: int
    node_count: int


@dataclass
class GpuCell:
    index: int
    model: str
    memory_mib: int
    allocated_milli: int
    holders: list[dict[str, Any]] = field(default_factory=list)

    @property
    def percent(self) -> float:
        return min(100.0, self.allocated_milli / 10)


@dataclass
class NodeCard:
    name: str
    cpu: Meter
    memory: Meter
    gpus: list[GpuCell]
    accelerators: list[Meter]
    labels: dict[str, str]
    schedulable: bool
    replicas: list[dict[str, Any]]


@dataclass
class QueueLine:
    key: str
    used: float
    quota: float | None
    borrowing_limit: float | None

    @property
    def borrowed(self) -> float:
        return max(0.0, self.used - self.quota) if self.quota is not None else 0.0

    @property
    def percent(self) -> float:
        if not self.quota:
            return 100.0 if self.used and self.quota == 0 else 0.0
        return min(100.0, 100.0 * self.used / self.quota)


@dataclass
class QueueCard:
    name: str
    cohort: str | None
    description: str
    lines: list[QueueLine]
    counts: Counter[str]
    pending: list[JobRow]


@dataclass
class JobFilters:
    state: str = ""
    queue: str = ""
    user: str = ""
    text: str = ""
    page: int = 1

    def query(self, **changes: Any) -> str:
        """The filters as a query string, with ``changes`` applied (for pagination links)."""
        from urllib.parse import urlencode

        values = {"state": self.state, "queue": self.queue, "user": self.user,
                  "text": self.text, "page": self.page, **changes}
        return urlencode({k: v for k, v in values.items() if v not in ("", None, 1)})


@dataclass
class JobListing:
    rows: list[JobRow]
    total: int
    filters: JobFilters
    pages: int
    resources: dict[str, str]  # job id -> "worker 2× cpu 1 gpu 0.5"
    labels: dict[str, dict[str, str]]  # job id -> labels


def overview(session: Session, platform: Platform,
             live: list[ReplicaRow] | None = None) -> Overview:
    nodes = list(platform.nodes())
    usage = node_usage(session, live)
    cpu = Meter("CPU", sum(n.cpu_milli for n in nodes) / 1000,
                sum(usage.get(n.name, {}).get("cpu_milli", 0) for n in nodes) / 1000, "cores")
    memory = Meter("Memory", sum(n.memory_bytes for n in nodes),
                   sum(usage.get(n.name, {}).get("memory_bytes", 0) for n in nodes), "bytes")
    gpus: dict[str, GpuModel] = {}
    accelerators: dict[str, Meter] = {}
    for node in nodes:
        used = usage.get(node.name, {})
        for gpu in node.gpus:
            entry = gpus.setdefault(gpu.model, GpuModel(gpu.model))
            milli = used.get("gpu_milli", {}).get(gpu.index, 0)
            entry.count += 1
            entry.allocated += milli / 1000
            entry.whole += milli >= 1000
            entry.shared += 0 < milli < 1000
        for kind, count in node.accelerators.items():
            meter = accelerators.setdefault(kind, Meter(kind, 0, 0))
            meter.total += count
            meter.used += used.get("accelerators", {}).get(kind, 0)
    gpu_meter = Meter("GPU", sum(g.count for g in gpus.values()),
                      sum(g.allocated for g in gpus.values()), "GPUs")
    states = state_counts(session)
    return Overview(meters=[cpu, memory, gpu_meter], gpus=sorted(gpus.values(),
                    key=lambda g: g.model), accelerators=sorted(
                    accelerators.values(), key=lambda m: m.label), states=states,
                    total_jobs=sum(states.values()), node_count=len(nodes))


def state_counts(session: Session) -> dict[str, int]:
    counts = dict.fromkeys(STATES, 0)
    for state, count in session.execute(
            select(JobRow.state, func.count()).group_by(JobRow.state)):
        counts[state] = count
    return counts


def recent_events(session: Session, limit: int = 12,
                  job_id: str | None = None) -> list[dict[str, Any]]:
    query = select(EventRow.job_id, EventRow.time, EventRow.type, EventRow.message)
    if job_id is not None:
        query = query.where(EventRow.job_id == job_id)
    rows = session.execute(query.order_by(EventRow.id.desc()).limit(limit)).all()
    return [{"job_id": r.job_id, "time": r.time, "type": r.type, "message": r.message}
            for r in rows]


def node_cards(session: Session, platform: Platform) -> list[NodeCard]:
    live = live_replicas(session)
    usage = node_usage(session, live)
    replicas_by_node: dict[str, list[dict[str, Any]]] = defaultdict(list)
    names = dict(session.execute(select(JobRow.id, JobRow.name).where(
        JobRow.id.in_({r.job_id for r in live}))).tuples().all()) if live else {}
    for replica in live:
        placement = placement_from_json(replica.placement)
        replicas_by_node[placement.node].append({
            "job_id": replica.job_id, "job_name": names.get(replica.job_id, ""),
            "replica": f"{replica.role}-{replica.index}", "gpus": list(placement.gpus),
            "share": placement.gpu_milli_each / 1000 if placement.gpus else 0,
            "cpu": placement.cpu_milli / 1000, "memory": placement.memory_bytes,
            "state": replica.state})
    cards = []
    for node in platform.nodes():
        used = usage.get(node.name, {})
        replicas = replicas_by_node.get(node.name, [])
        cells = [GpuCell(g.index, g.model, g.memory_mib,
                         used.get("gpu_milli", {}).get(g.index, 0)) for g in node.gpus]
        for holder in replicas:
            for cell in cells:
                if cell.index in holder["gpus"]:
                    cell.holders.append(holder)
        cards.append(NodeCard(
            name=node.name, cpu=Meter("CPU", node.cpu_milli / 1000,
                                      used.get("cpu_milli", 0) / 1000, "cores"),
            memory=Meter("Memory", node.memory_bytes, used.get("memory_bytes", 0), "bytes"),
            gpus=cells, labels=dict(node.labels), schedulable=node.schedulable,
            accelerators=[Meter(kind, count, used.get("accelerators", {}).get(kind, 0))
                          for kind, count in sorted(node.accelerators.items())],
            replicas=replicas))
    return cards


def job_listing(session: Session, filters: JobFilters) -> JobListing:
    """One page of jobs, newest first: one SELECT with LIMIT/OFFSET and one COUNT."""
    labels = {"user": filters.user} if filters.user else None
    page = max(1, filters.page)
    rows, total = job_service.list_jobs(session, job_service.JobFilter(
        states=[filters.state] if filters.state else (), queue=filters.queue or None,
        text=filters.text or None, labels=labels, limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE))
    return JobListing(rows=rows, total=total, filters=filters,
                      pages=max(1, -(-total // PAGE_SIZE)),
                      resources={row.id: resources_summary(row.spec) for row in rows},
                      labels={row.id: json.loads(row.labels or "{}") for row in rows})


def resources_summary(spec_json: str) -> str:
    """'worker 2× cpu 1 gpu 0.5' — what a job asks for, in one short line. Reads the stored
    (already validated) spec as plain JSON: no model validation per row on a list page."""
    try:
        replicas: dict[str, Any] = json.loads(spec_json).get("replicas", {})
    except (ValueError, AttributeError):
        return ""
    parts = []
    for role, group in replicas.items():
        res = group.get("resources", {})
        amounts = [f"cpu {res['cpu']:g}"] if res.get("cpu") else []
        if res.get("gpu"):
            amounts.append(f"gpu {res['gpu']:g}")
        amounts += [f"{kind} {count}" for kind, count in res.get("accelerators", {}).items()]
        parts.append(f"{role} {group.get('count', 1)}× " + " ".join(amounts))
    return " · ".join(parts)


def queue_names(session: Session) -> list[str]:
    return [spec.name for spec in queue_service.list_all(session)]


def queue_cards(session: Session, platform: Platform, pending_limit: int = 20,
                live: list[ReplicaRow] | None = None) -> list[QueueCard]:
    usage = queue_usages(session, list(platform.nodes()), live)
    counts = job_counts_by_queue(session)  # pending, admitted, running: what cards show
    cards = []
    for spec in queue_service.list_all(session):
        quota = spec.quota.flat()
        limit = spec.borrowing_limit.flat() if spec.borrowing_limit else {}
        used = usage.get(spec.name, {})
        keys = list(dict.fromkeys([*quota, *used]))
        lines = [QueueLine(key, _display(key, used.get(key, 0)),
                           _display(key, quota[key]) if key in quota else None,
                           _display(key, limit[key]) if key in limit else None)
                 for key in keys]
        pending = list(session.scalars(select(JobRow).where(
            JobRow.queue == spec.name, JobRow.state == JobState.PENDING).order_by(
            JobRow.priority.desc(), JobRow.seq).limit(pending_limit))) if pending_limit else []
        cards.append(QueueCard(spec.name, spec.cohort, spec.description, lines,
                               counts[spec.name], pending))
    return cards


def _display(key: str, amount: int) -> float:
    """Scheduler units (milli-CPU, milli-GPU, bytes) as people count them."""
    return amount / 1000 if key == "cpu" or key.startswith("gpu") else float(amount)
