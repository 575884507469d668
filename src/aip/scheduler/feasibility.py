"""Rejection at submit: can this job ever run on the registered nodes?

``infeasible_reason`` ignores what runs now and asks whether the *empty* cluster could hold
the job: every replica alone on some schedulable node, then the whole gang at once. It only
rejects what is provably impossible: when the greedy gang placement fails, it rejects only if
a counting bound (per-role capacity of the cluster, or cluster totals) proves the gang too big;
otherwise the job is accepted and will wait with a reason.
"""

from __future__ import annotations

from collections.abc import Sequence

from aip.scheduler import reasons
from aip.scheduler.gang import GangMiss, place_gang, replicas_of
from aip.scheduler.model import MILLI_PER_GPU, Node, PendingJob, ReplicaRequest
from aip.scheduler.placement import BestFitPolicy
from aip.scheduler.resources import ClusterState, fits_empty


def infeasible_reason(nodes: Sequence[Node], job: PendingJob) -> str | None:
    """Why no node set could ever hold ``job`` even when completely empty; None if it can."""
    state = ClusterState(nodes)
    for role in job.roles:
        request = role.request
        models = request.gpu_types or None
        if role.count > 0 and not any(fits_empty(node, request, models) for node in nodes):
            found = reasons.capacity_reason(state, request, models, role.role, role.count,
                                            empty=True)
            if found is not None:
                return found[1]
            return f"no node can hold a {role.role} replica ({reasons.describe(request)})"
    role_models = [role.request.gpu_types or None for role in job.roles]
    if not isinstance(place_gang(state, replicas_of(job, role_models), BestFitPolicy()),
                      GangMiss):
        return None
    return _counting_bound(nodes, job)


def _counting_bound(nodes: Sequence[Node], job: PendingJob) -> str | None:
    schedulable = [node for node in nodes if node.schedulable]
    for role in job.roles:
        most = sum(_replicas_per_node(node, role.request) for node in schedulable)
        if role.count > most:
            return (f"needs {role.count} {role.role} replicas "
                    f"({reasons.describe(role.request)}) at once; the whole cluster holds at "
                    f"most {most}")
    totals = {
        "cpu": (sum(r.request.cpu_milli * r.count for r in job.roles),
                sum(node.cpu_milli for node in schedulable)),
        "memory": (sum(r.request.memory_bytes * r.count for r in job.roles),
                   sum(node.memory_bytes for node in schedulable)),
    }
    allowed: set[str] | None = set()
    for role in job.roles:
        if role.request.gpu_milli and allowed is not None:
            allowed = None if not role.request.gpu_types else allowed | role.request.gpu_types
    totals["gpu"] = (
        sum(r.request.gpu_milli * r.count for r in job.roles),
        MILLI_PER_GPU * sum(1 for node in schedulable for gpu in node.gpus
                            if allowed is None or gpu.model in allowed))
    for key, (needed, available) in totals.items():
        if needed > available:
            return (f"needs {reasons.amount(key, needed)} {key} in total; the whole cluster has "
                    f"{reasons.amount(key, available)}")
    return None


def _replicas_per_node(node: Node, request: ReplicaRequest) -> int:
    """How many replicas of ``request`` fit on ``node`` when it is empty (exact for one shape)."""
    limits = [node.cpu_milli // request.cpu_milli if request.cpu_milli else None,
              node.memory_bytes // request.memory_bytes if request.memory_bytes else None]
    limits += [node.accelerators.get(kind, 0) // count for kind, count in request.accelerators]
    if request.gpu_milli:
        allowed = [gpu.model for gpu in node.gpus
                   if not request.gpu_types or gpu.model in request.gpu_types]
        if request.gpu_shared:
            limits.append(len(allowed) * (MILLI_PER_GPU // request.gpu_milli))
        else:
            per_model = {model: allowed.count(model) for model in set(allowed)}
            limits.append(sum(count // request.whole_gpus for count in per_model.values()))
    bounded = [limit for limit in limits if limit is not None]
    return min(bounded) if bounded else 1_000_000
