"""Rejection at submit: can this job ever run on the registered nodes?

``infeasible_reason`` ignores what runs now and asks whether the *empty* cluster could hold
the job: every replica alone on some schedulable node, then the whole gang at once. It only
rejects what is provably impossible: when the greedy gang placement fails, it rejects only if
a counting bound (per-role capacity of the cluster, or cluster totals) proves the gang too big;
otherwise the job is accepted and will wait with a reason.

A gang whose topology is "required" must fit within one RDMA domain: it is rejected when no
schedulable node carries the domain label, or when the counting bound proves every domain too
small on its own.
"""

from __future__ import annotations

from collections.abc import Sequence

from aip.scheduler import reasons
from aip.scheduler.gang import GangMiss, Replica, place_gang, replicas_of
from aip.scheduler.model import MILLI_PER_GPU, TOPOLOGY_LABEL, Node, PendingJob, ReplicaRequest
from aip.scheduler.placement import BestFitPolicy
from aip.scheduler.resources import ClusterState, fits_empty
from aip.scheduler.topology import REQUIRED, domains_of, gang_topology, place_job

MAX_DOMAINS_SHOWN = 3


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
    replicas = replicas_of(job, role_models)
    if gang_topology(job) == REQUIRED:
        return _within_one_domain(state, job, replicas)
    if not isinstance(place_gang(state, replicas, BestFitPolicy()), GangMiss):
        return None
    return _counting_bound(nodes, job)


def _within_one_domain(state: ClusterState, job: PendingJob,
                       replicas: list[Replica]) -> str | None:
    """Why no single RDMA domain could ever hold the gang; None if one might."""
    total = len(replicas)
    members = domains_of(state).members
    if not members:
        return (f"topology required: no schedulable node has the {TOPOLOGY_LABEL} label, so the "
                f"{total} replicas can never be kept within one RDMA domain; label the nodes "
                f"of each domain or ask for topology preferred")
    if not isinstance(place_job(state, replicas, BestFitPolicy(), REQUIRED), GangMiss):
        return None
    bounds: list[str] = []
    for name, positions in members.items():
        bound = _counting_bound([state.nodes[p].node for p in sorted(positions)], job,
                                f"domain {name}")
        if bound is None:
            return None  # this domain might hold it: accept, the job waits with a reason
        bounds.append(bound)
    extra = len(bounds) - MAX_DOMAINS_SHOWN
    more = f"; and {extra} more domains" if extra > 0 else ""
    needs = {bound.split("; ", 1)[0] for bound in bounds}
    if len(needs) == 1:  # say what the gang needs once, then what each domain has
        bounds = [needs.pop()] + [bound.split("; ", 1)[1] for bound in bounds]
        extra_shown = MAX_DOMAINS_SHOWN + 1  # the needs, then the domains
    else:
        extra_shown = MAX_DOMAINS_SHOWN
    return (f"topology required: no single RDMA domain ({TOPOLOGY_LABEL}) can ever hold all "
            f"{total} replicas: {'; '.join(bounds[:extra_shown])}{more}")


def _counting_bound(nodes: Sequence[Node], job: PendingJob,
                    scope: str = "the whole cluster") -> str | None:
    """Why ``nodes`` (called ``scope`` in the text) can never hold ``job``, by counting; None
    when counting does not prove it."""
    schedulable = [node for node in nodes if node.schedulable]
    for role in job.roles:
        most = sum(_replicas_per_node(node, role.request) for node in schedulable)
        if role.count > most:
            return (f"needs {role.count} {role.role} replicas "
                    f"({reasons.describe(role.request)}) at once; {scope} holds at "
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
            return (f"needs {reasons.amount(key, needed)} {key} in total; {scope} has "
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
