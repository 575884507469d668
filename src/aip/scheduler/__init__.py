"""The pure scheduler: an immutable ``Snapshot`` in, a ``CycleResult`` out.

No I/O, no clock, no database. The control plane and the trace simulator call the same
``schedule``; placement is a pluggable ``PlacementPolicy`` (default ``BestFitPolicy``).

    result = schedule(snapshot)                      # admit / preempt / wait, with reasons
    reason = infeasible_reason(nodes, job)           # at submit: can it ever run?
    usage = queue_usage(snapshot)                    # per queue: key -> used, next to quota

Modules: ``model`` (vocabulary), ``cycle`` (the phases), ``admission`` (quota, borrowing),
``placement`` (policies), ``gang`` (all-or-nothing), ``topology`` (one RDMA domain per gang),
``preemption``, ``resources`` (free capacity), ``reasons`` (plain words), ``feasibility``
(submit-time check), ``bench``.
"""

from aip.scheduler.admission import QuotaBlock, QuotaBook, queue_usage
from aip.scheduler.cycle import schedule
from aip.scheduler.feasibility import infeasible_reason
from aip.scheduler.model import (
    MILLI_PER_GPU,
    TOPOLOGY_LABEL,
    Admit,
    Allocation,
    CycleResult,
    Gpu,
    Node,
    PendingJob,
    Preempt,
    Queue,
    ReplicaPlacement,
    ReplicaRequest,
    RoleRequest,
    Snapshot,
    Wait,
    WaitReason,
)
from aip.scheduler.placement import (
    BestFitPolicy,
    Choice,
    PlacementPolicy,
    ScoredPolicy,
    best_fit_score,
    candidates,
)
from aip.scheduler.resources import ClusterState
from aip.scheduler.topology import domains_spanned

__all__ = [
    "MILLI_PER_GPU",
    "TOPOLOGY_LABEL",
    "Admit",
    "Allocation",
    "BestFitPolicy",
    "Choice",
    "ClusterState",
    "CycleResult",
    "Gpu",
    "Node",
    "PendingJob",
    "PlacementPolicy",
    "Preempt",
    "Queue",
    "QuotaBlock",
    "QuotaBook",
    "ReplicaPlacement",
    "ReplicaRequest",
    "RoleRequest",
    "ScoredPolicy",
    "Snapshot",
    "Wait",
    "WaitReason",
    "best_fit_score",
    "candidates",
    "domains_spanned",
    "infeasible_reason",
    "queue_usage",
    "schedule",
]
