"""Readable builders for scheduler tests.

    make_node("n1", cpu=8, gpus=4, model="T4", domain="pod-a")   # domain: RDMA label
    make_job("train").replicas(worker=2).gpu(1).topology("required").build()
    make_job("ps-job").replicas(worker=2).gpu(1).role("ps", 1, cpu=2).build()
    running("old", placed("n1", gpus=(0, 1)), queue="team-a", priority=0)
    snapshot(nodes=[...], queues=[...], running=[...], pending=[...])
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from aip.scheduler import (
    Allocation,
    CycleResult,
    Gpu,
    Node,
    PendingJob,
    Queue,
    ReplicaPlacement,
    ReplicaRequest,
    RoleRequest,
    Snapshot,
    Wait,
)
from aip.scheduler.model import TOPOLOGY_LABEL

GI = 2**30
_seq = itertools.count(1)


def make_node(name: str, cpu: float = 8, memory: int = 64, gpus: int = 0, model: str = "T4",
              accelerators: Mapping[str, int] | None = None, schedulable: bool = True,
              models: Sequence[str] = (), domain: str | None = None) -> Node:
    """``memory`` in GiB; ``models`` lists one model per GPU (overrides ``gpus``/``model``);
    ``domain`` sets the node's RDMA domain label."""
    gpu_models = list(models) or [model] * gpus
    return Node(name, round(cpu * 1000), memory * GI,
                tuple(Gpu(index, m) for index, m in enumerate(gpu_models)),
                dict(accelerators or {}), {} if domain is None else {TOPOLOGY_LABEL: domain},
                schedulable)


@dataclass
class _Role:
    name: str
    count: int
    cpu: float = 1
    memory: float = 1
    gpu: float = 0
    gpu_types: tuple[str, ...] = ()
    accelerators: dict[str, int] = field(default_factory=dict)

    def request(self) -> ReplicaRequest:
        return ReplicaRequest(round(self.cpu * 1000), round(self.memory * GI),
                              round(self.gpu * 1000), frozenset(self.gpu_types),
                              tuple(sorted(self.accelerators.items())))


class JobBuilder:
    def __init__(self, job_id: str, queue: str, priority: int, seq: int | None) -> None:
        self.job_id = job_id
        self.queue = queue
        self.priority = priority
        self.seq = next(_seq) if seq is None else seq
        self.roles: list[_Role] = [_Role("main", 1)]
        self._current: list[_Role] = list(self.roles)
        self._topology = "none"

    def replicas(self, **counts: int) -> JobBuilder:
        """Replace the roles by these (role=count); later setters apply to them."""
        self.roles = [_Role(name, count) for name, count in counts.items()]
        self._current = list(self.roles)
        return self

    def role(self, name: str, count: int, *, cpu: float = 1, memory: float = 1, gpu: float = 0,
             gpu_type: Iterable[str] = (), accelerators: Mapping[str, int] | None = None,
             ) -> JobBuilder:
        """Add one more role with its own resources (setters still apply to earlier roles)."""
        self.roles.append(_Role(name, count, cpu, memory, gpu, tuple(gpu_type),
                                dict(accelerators or {})))
        return self

    def cpu(self, cores: float) -> JobBuilder:
        return self._set(cpu=cores)

    def memory(self, gib: float) -> JobBuilder:
        return self._set(memory=gib)

    def gpu(self, count: float, *types: str) -> JobBuilder:
        return self._set(gpu=count, gpu_types=types)

    def acc(self, kind: str, count: int) -> JobBuilder:
        for role in self._current:
            role.accelerators[kind] = count
        return self

    def topology(self, mode: str) -> JobBuilder:
        """"none", "preferred" or "required"."""
        self._topology = mode
        return self

    def _set(self, **values: object) -> JobBuilder:
        for role in self._current:
            for key, value in values.items():
                setattr(role, key, value)
        return self

    def build(self) -> PendingJob:
        return PendingJob(self.job_id, self.queue, self.priority, self.seq,
                          tuple(RoleRequest(r.name, r.count, r.request()) for r in self.roles),
                          topology=self._topology)


def make_job(job_id: str, queue: str = "default", priority: int = 0,
             seq: int | None = None) -> JobBuilder:
    return JobBuilder(job_id, queue, priority, seq)


def placed(node: str, *, cpu: float = 1, memory: float = 1, gpus: Sequence[int] = (),
           milli: int = 1000, model: str | None = "T4", role: str = "main", index: int = 0,
           accelerators: Mapping[str, Sequence[int]] | None = None) -> ReplicaPlacement:
    return ReplicaPlacement(role, index, node, round(cpu * 1000), round(memory * GI),
                            tuple(gpus), milli if gpus else 0, model if gpus else None,
                            {kind: tuple(ids) for kind, ids in (accelerators or {}).items()})


def running(job_id: str, *placements: ReplicaPlacement, queue: str = "default",
            priority: int = 0, seq: int | None = None, preemptible: bool = True) -> Allocation:
    return Allocation(job_id, queue, priority, next(_seq) if seq is None else seq,
                      tuple(placements), preemptible)


def queue(name: str = "default", cohort: str | None = None,
          borrowing_limit: Mapping[str, float] | None = None, **nominal: float) -> Queue:
    """Quota in human units: cpu cores, memory GiB, gpu GPUs; ``gpu_T4=2`` is "gpu/T4",
    ``gpu_any=0`` is "gpu/*", ``acc_fpga=1`` is "acc/fpga"."""
    return Queue(name, cohort, _keys(nominal),
                 None if borrowing_limit is None else _keys(borrowing_limit))


def _keys(amounts: Mapping[str, float]) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, value in amounts.items():
        if name == "cpu":
            out["cpu"] = round(value * 1000)
        elif name == "memory":
            out["memory"] = round(value * GI)
        elif name == "gpu":
            out["gpu"] = round(value * 1000)
        elif name == "gpu_any":
            out["gpu/*"] = round(value * 1000)
        elif name.startswith("gpu_"):
            out[f"gpu/{name[4:]}"] = round(value * 1000)
        elif name.startswith("acc_"):
            out[f"acc/{name[4:]}"] = round(value)
        else:
            raise ValueError(f"unknown quota {name}")
    return out


def snapshot(nodes: Sequence[Node], pending: Sequence[PendingJob] = (),
             running: Sequence[Allocation] = (), queues: Sequence[Queue] | None = None,
             ) -> Snapshot:
    return Snapshot(tuple(nodes), tuple(queues if queues is not None else [queue()]),
                    tuple(running), tuple(pending))


def admitted(result: CycleResult) -> dict[str, tuple[ReplicaPlacement, ...]]:
    return {admit.job_id: admit.placements for admit in result.admitted}


def waits(result: CycleResult) -> dict[str, Wait]:
    return {wait.job_id: wait for wait in result.waiting}


def preempted(result: CycleResult) -> dict[str, str]:
    """victim -> preemptor"""
    return {p.job_id: p.for_job for p in result.preempted}


def where(result: CycleResult, job_id: str) -> list[tuple[str, tuple[int, ...]]]:
    """(node, gpus) of each replica of an admitted job, in role/index order."""
    return [(p.node, p.gpus) for p in admitted(result)[job_id]]
