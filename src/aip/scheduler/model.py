"""The scheduler's vocabulary: an immutable snapshot in, decisions out.

Everything here is plain frozen data. The control plane builds a ``Snapshot`` from its store
and inventory; the trace simulator builds one from a cluster trace. Both call
``aip.scheduler.schedule`` and act on the ``CycleResult``.

Units: CPU in milli-cores, memory in bytes, GPUs in milli-GPU (1000 = one whole GPU; a replica
asking for less than 1000 takes a share of a single GPU), accelerators in whole devices.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

MILLI_PER_GPU = 1000

# Node label naming a node's network (RDMA) domain, e.g. "pod-a". A job whose ``topology`` is
# "preferred" or "required" keeps its gang on nodes of one value (``aip.scheduler.topology``).
TOPOLOGY_LABEL = "aip.io/rdma-domain"


@dataclass(frozen=True, slots=True)
class Gpu:
    index: int
    model: str
    memory_mib: int = 0


@dataclass(frozen=True, slots=True)
class Node:
    """A machine the scheduler may place replicas on."""

    name: str
    cpu_milli: int
    memory_bytes: int
    gpus: tuple[Gpu, ...] = ()
    accelerators: Mapping[str, int] = field(default_factory=dict)  # kind -> device count
    labels: Mapping[str, str] = field(default_factory=dict)
    schedulable: bool = True
    address: str = "127.0.0.1"  # where replicas on this node are reached (rendezvous hosts)


@dataclass(frozen=True, slots=True)
class ReplicaRequest:
    """What one replica needs. ``gpu_milli`` < 1000 is a share of one GPU; otherwise it is a
    multiple of 1000 (whole GPUs). Empty ``gpu_types`` admits any GPU model."""

    cpu_milli: int
    memory_bytes: int
    gpu_milli: int = 0
    gpu_types: frozenset[str] = frozenset()
    accelerators: tuple[tuple[str, int], ...] = ()  # sorted (kind, count)

    @property
    def gpu_shared(self) -> bool:
        return 0 < self.gpu_milli < MILLI_PER_GPU

    @property
    def whole_gpus(self) -> int:
        return 0 if self.gpu_shared else self.gpu_milli // MILLI_PER_GPU


@dataclass(frozen=True, slots=True)
class RoleRequest:
    role: str
    count: int
    request: ReplicaRequest


@dataclass(frozen=True, slots=True)
class PendingJob:
    """A job waiting for admission. ``seq`` orders jobs FIFO within a priority.

    ``topology``: "none", "preferred" (keep a multi-replica gang within one RDMA domain when
    some domain has room, else place it as usual) or "required" (within one domain, or wait);
    see ``aip.scheduler.topology``."""

    job_id: str
    queue: str
    priority: int
    seq: int
    roles: tuple[RoleRequest, ...]
    topology: str = "none"

    @property
    def replica_count(self) -> int:
        return sum(role.count for role in self.roles)


@dataclass(frozen=True, slots=True)
class ReplicaPlacement:
    """Where one replica runs and which devices it holds.

    ``gpus`` are device indices on ``node``; ``gpu_milli_each`` is the share taken of each of
    them (1000 for whole GPUs). ``accelerators`` maps kind -> device ids on the node."""

    role: str
    index: int
    node: str
    cpu_milli: int
    memory_bytes: int
    gpus: tuple[int, ...] = ()
    gpu_milli_each: int = 0
    gpu_model: str | None = None
    accelerators: Mapping[str, tuple[int, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Allocation:
    """A job that holds resources now (admitted or running). ``seq`` is its admission order:
    preemption prefers the most recently admitted victims, which lose the least work."""

    job_id: str
    queue: str
    priority: int
    seq: int
    placements: tuple[ReplicaPlacement, ...]
    preemptible: bool = True


@dataclass(frozen=True, slots=True)
class Queue:
    """Nominal quota and borrowing limit as flat resource keys (see ``resource keys`` below).
    A key absent from ``nominal`` is unlimited for this queue."""

    name: str
    cohort: str | None = None
    nominal: Mapping[str, int] = field(default_factory=dict)
    borrowing_limit: Mapping[str, int] | None = None  # None: may borrow all idle cohort quota


# Resource keys used by quotas and usage:
#   "cpu" (milli), "memory" (bytes), "gpu" (milli, any type), "gpu/<MODEL>" (milli),
#   "gpu/*" (milli, for models without their own key), "acc/<kind>" (devices).


@dataclass(frozen=True, slots=True)
class Snapshot:
    nodes: tuple[Node, ...]
    queues: tuple[Queue, ...]
    running: tuple[Allocation, ...]
    pending: tuple[PendingJob, ...]


class WaitReason(StrEnum):
    """Why a job keeps waiting (Kueue-style condition reasons)."""

    QUEUE_NOT_FOUND = "QueueNotFound"
    WAITING_FOR_QUOTA = "WaitingForQuota"
    NO_MATCHING_GPU_TYPE = "NoMatchingGpuType"
    INSUFFICIENT_RESOURCES = "InsufficientResources"
    WAITING_FOR_PREEMPTION = "WaitingForPreemption"
    BLOCKED_BY_HIGHER_PRIORITY = "BlockedByHigherPriority"
    TOPOLOGY = "TopologyUnsatisfied"  # "required" and no single RDMA domain has room


@dataclass(frozen=True, slots=True)
class Admit:
    job_id: str
    placements: tuple[ReplicaPlacement, ...]


@dataclass(frozen=True, slots=True)
class Preempt:
    """Stop ``job_id`` (requeue it; it is not a failure) so that ``for_job`` can run."""

    job_id: str
    for_job: str
    reason: str


@dataclass(frozen=True, slots=True)
class Wait:
    job_id: str
    code: WaitReason
    reason: str  # plain words: "queue team-a: gpu quota 4/4 in use"


@dataclass(frozen=True, slots=True)
class CycleResult:
    admitted: tuple[Admit, ...] = ()
    preempted: tuple[Preempt, ...] = ()
    waiting: tuple[Wait, ...] = ()
