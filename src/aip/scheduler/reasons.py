"""Plain-words reasons: why a job waits, why it was preempted, why it can never run.

Every sentence names the queue, the resource, the amounts in human units (GPUs as 4 or 0.5,
cpu in cores, memory as 16Gi) and the limit that stops the job, so a user knows what to change
or what to wait for. ``capacity_reason`` finds the first resource that no node has free for a
replica by filtering nodes resource by resource (GPU, accelerators, cpu, memory); with
``empty=True`` it words the same finding for the empty cluster (used at submit).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aip.scheduler.admission import QuotaBlock
from aip.scheduler.gang import GangMiss
from aip.scheduler.model import (
    MILLI_PER_GPU,
    TOPOLOGY_LABEL,
    Allocation,
    ReplicaRequest,
    WaitReason,
)
from aip.scheduler.resources import ClusterState, NodeState

MAX_NAMES = 5


def gpus(milli: int) -> str:
    """4000 -> "4", 500 -> "0.5"."""
    return f"{milli / MILLI_PER_GPU:g}"


def cpus(milli: int) -> str:
    return f"{milli / 1000:g}"


def memory(num_bytes: int) -> str:
    """Binary units, exact when possible: 17179869184 -> "16Gi", 1610612736 -> "1.5Gi"."""
    for unit, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if num_bytes >= size:
            return f"{num_bytes / size:.1f}".removesuffix(".0") + unit
    return f"{num_bytes}B"


def amount(key: str, value: int) -> str:
    if key == "cpu":
        return cpus(value)
    if key == "memory":
        return memory(value)
    if key.startswith("gpu"):
        return gpus(value)
    return str(value)


def quota_name(key: str) -> str:
    """"gpu/V100M32" -> "gpu quota for V100M32"."""
    if key == "gpu/*":
        return "gpu quota for other GPU models"
    if key.startswith("gpu/"):
        return f"gpu quota for {key[4:]}"
    if key.startswith("acc/"):
        return f"{key[4:]} quota"
    return f"{key} quota"


def quota_reason(blocks: Sequence[QuotaBlock]) -> str:
    return "; ".join(_quota_sentence(block) for block in blocks[:3])


def _quota_sentence(block: QuotaBlock) -> str:
    name = quota_name(block.key)
    key = block.key
    used = amount(key, block.used - block.held)
    nominal = amount(key, block.nominal)
    needs = f"job needs {amount(key, block.requested)}"
    held = f", {amount(key, block.held)} held for preempting jobs" if block.held else ""
    if block.limit == "nominal":
        if block.nominal == 0:
            return f"queue {block.queue} has no {name} ({needs})"
        return f"queue {block.queue}: {name} {used}/{nominal} in use{held} ({needs})"
    if block.limit == "borrowing_limit":
        borrow = amount(key, block.used + block.requested - block.nominal)
        limit = amount(key, block.borrowing_limit or 0)
        return (f"queue {block.queue}: {name} {used}/{nominal} in use{held} ({needs}); it "
                f"would borrow {borrow}, over its borrowing limit of {limit}")
    cohort_held = (f", {amount(key, block.cohort_held)} held for preempting jobs"
                   if block.cohort_held else "")
    cohort_use = (f"{amount(key, block.cohort_used - block.cohort_held)}/"
                  f"{amount(key, block.cohort_nominal)} in use{cohort_held}")
    if block.used + block.requested <= block.nominal:
        return (f"queue {block.queue}: {name} {used}/{nominal} in use{held} ({needs}), but "
                f"cohort {block.cohort} lent it to other queues ({cohort_use})")
    idle = block.cohort_nominal - block.cohort_used
    idle_text = "none idle" if idle <= 0 else f"only {amount(key, idle)} idle"
    return (f"queue {block.queue}: {name} {used}/{nominal} in use{held} ({needs}); cohort "
            f"{block.cohort} has {idle_text}")


def describe(request: ReplicaRequest) -> str:
    """"2 gpu (V100M32), 8 cpu, 32Gi, tpu:4"."""
    parts = []
    if request.gpu_milli:
        gpu = f"{gpus(request.gpu_milli)} gpu"
        if request.gpu_types:
            gpu += f" ({'|'.join(sorted(request.gpu_types))})"
        parts.append(gpu)
    parts += [f"{cpus(request.cpu_milli)} cpu", memory(request.memory_bytes)]
    parts += [f"{kind}:{count}" for kind, count in request.accelerators]
    return ", ".join(parts)


def names(job_ids: Sequence[str]) -> str:
    shown = ", ".join(job_ids[:MAX_NAMES])
    extra = len(job_ids) - MAX_NAMES
    return shown if extra <= 0 else f"{shown} and {extra} more"


def preemption_wait(victims: Sequence[Allocation], priority: int) -> str:
    count = len(victims)
    noun = "job" if count == 1 else "jobs"
    listed = names([victim.job_id for victim in victims])
    if all(victim.priority < priority for victim in victims):
        return f"waiting for {count} lower-priority {noun} to stop: {listed}"
    return (f"waiting for {count} {noun} to stop, reclaiming quota its cohort lent to other "
            f"queues: {listed}")


def preemption_reason(job_id: str, priority: int, queue: str, victim: Allocation) -> str:
    if victim.priority < priority:
        return f"preempted by job {job_id} (priority {priority}) in queue {queue}"
    return (f"preempted to return quota that queue {victim.queue} borrowed; queue {queue} "
            f"reclaims it for job {job_id} (priority {priority})")


def blocked_reason(preemptors: Sequence[tuple[str, int]], priority: int) -> str:
    """``preemptors``: (job id, priority) of the jobs whose held capacity keeps this one out."""
    ahead = ("higher-priority jobs" if all(p > priority for _job, p in preemptors)
             else "jobs ahead of it")
    listed = names([f"{job_id} (priority {p})" for job_id, p in preemptors])
    return f"waiting behind {ahead}: the capacity it needs is being freed for {listed}"


def gang_reason(miss: GangMiss) -> str:
    replica = miss.replica
    return (f"the gang of {miss.total} replicas does not fit at once: after placing "
            f"{miss.placed}, no room is left for {replica.role} {replica.index} "
            f"({describe(replica.request)})")


def topology_reason(total: int, rooms: Sequence[tuple[str, int]]) -> str:
    """Why a "required" gang of ``total`` replicas waits; ``rooms``: (domain, how many of its
    replicas fit there now), as ``topology.domain_room`` finds them."""
    if not rooms:
        return (f"topology required: no schedulable node has the {TOPOLOGY_LABEL} label, so the "
                f"{total} replicas cannot be kept within one RDMA domain")
    shown = sorted(sorted(rooms, key=lambda room: (-room[1], room[0]))[:MAX_NAMES])
    listed = ", ".join(f"{name} has room for {count}" if i == 0 else f"{name} for {count}"
                       for i, (name, count) in enumerate(shown))
    extra = len(rooms) - len(shown)
    more = f", and {extra} more domains" if extra > 0 else ""
    return (f"topology required: no single RDMA domain ({TOPOLOGY_LABEL}) has room for all "
            f"{total} replicas ({listed}{more})")


def capacity_reason(state: ClusterState, request: ReplicaRequest, models: frozenset[str] | None,
                    role: str, count: int = 1, *,
                    empty: bool = False) -> tuple[WaitReason, str] | None:
    """Why no schedulable node can hold one replica of ``request`` (one of ``count`` of
    ``role``); None if one can. ``empty``: word it for the empty cluster."""
    nodes = [node for node in state.nodes if node.schedulable]
    if not nodes:
        return WaitReason.INSUFFICIENT_RESOURCES, "no schedulable node in the cluster"
    words = _Words(empty, f" for each of its {count} {role} replicas" if count > 1 else "")
    where = ""
    if request.gpu_milli:
        wanted = state.allowed_models(models)
        if not wanted:
            return WaitReason.NO_MATCHING_GPU_TYPE, _no_model(models)
        label = " or ".join(wanted) + " " if models is not None else ""
        nodes, why = _gpu_filter(state, nodes, request, wanted, label, words)
        if why is not None:
            return WaitReason.INSUFFICIENT_RESOURCES, why
        if request.whole_gpus:
            plural = "s" if request.whole_gpus > 1 else ""
            where = f" with {request.whole_gpus} {words.free}{label}GPU{plural}"
        else:
            where = f" with {gpus(request.gpu_milli)} of a {words.free}{label}GPU"
    for kind, needed in request.accelerators:
        best = max(node.acc_free.get(kind, 0) for node in nodes)
        if best < needed:
            if not any(kind in node.acc_holders for node in state.nodes if node.schedulable):
                return WaitReason.INSUFFICIENT_RESOURCES, f"no node has accelerator {kind!r}"
            return WaitReason.INSUFFICIENT_RESOURCES, (
                f"insufficient {words.free}{kind}: needs {needed} on one node{where}"
                f"{words.each}; {words.most(best, str(best))}")
        nodes = [node for node in nodes if node.acc_free.get(kind, 0) >= needed]
    best_cpu = max(node.cpu_free for node in nodes)
    if best_cpu < request.cpu_milli:
        return WaitReason.INSUFFICIENT_RESOURCES, (
            f"insufficient {words.free}cpu: needs {cpus(request.cpu_milli)} cpu on one node"
            f"{where}{words.each}; {words.most(best_cpu, cpus(best_cpu))}")
    nodes = [node for node in nodes if node.cpu_free >= request.cpu_milli]
    best_memory = max(node.memory_free for node in nodes)
    if best_memory < request.memory_bytes:
        return WaitReason.INSUFFICIENT_RESOURCES, (
            f"insufficient {words.free}memory: needs {memory(request.memory_bytes)} on one "
            f"node{where}{words.each}; {words.most(best_memory, memory(best_memory))}")
    return None


@dataclass(frozen=True, slots=True)
class _Words:
    empty: bool  # describing the empty cluster (at submit) rather than free capacity now
    each: str  # " for each of its 4 worker replicas", or ""

    @property
    def free(self) -> str:
        return "" if self.empty else "free "

    def most(self, value: int, text: str) -> str:
        if value <= 0:
            return "no such node has any" + ("" if self.empty else " free")
        return f"the largest node has {text}" if self.empty else f"most free is {text}"


def _no_model(models: frozenset[str] | None) -> str:
    if models is None:
        return "no node has a GPU"
    if not models:
        return "no node has a GPU of a model this job and its queue's quota allow"
    return f"no node has a {' or '.join(sorted(models))} GPU"


def _gpu_filter(state: ClusterState, nodes: list[NodeState], request: ReplicaRequest,
                models: Sequence[str], label: str,
                words: _Words) -> tuple[list[NodeState], str | None]:
    """The nodes with room for the replica's GPUs (found through the state's indexes), or
    why there are none."""
    free = words.free
    if request.whole_gpus:
        wanted = request.whole_gpus
        positions = {position for model in models
                     for _count, bucket in state.nodes_with_whole(model, wanted)
                     for position in bucket}
        if positions:
            return [node for node in nodes if node.position in positions], None
        largest = max((count for model in models
                       for count, bucket in state.whole_buckets.get(model, {}).items() if bucket),
                      default=0)
        if largest == 0:
            return [], f"no node has a {free}{label}GPU"
        return [], (f"needs {wanted} {free}{label}GPUs on one node{words.each}; "
                    f"{words.most(largest, str(largest))}")
    share = request.gpu_milli
    positions = {position for model in models if model in state.share_levels
                 for _level, gpus in state.share_levels[model].at_least(share)
                 for position, _slot in gpus}
    if positions:
        return [node for node in nodes if node.position in positions], None
    best = max((state.share_levels[model].levels[-1] for model in models
                if model in state.share_levels and state.share_levels[model].levels), default=0)
    if best <= 0:
        return [], f"no node has a {free}{label}GPU"
    return [], (f"needs {gpus(share)} of one {free}{label}GPU{words.each}; the most free on "
                f"one GPU is {gpus(best)}")
