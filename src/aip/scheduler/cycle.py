"""One scheduling cycle: an immutable snapshot in, decisions out.

    ctx = working copy of free capacity and quota usage          (phase 1: snapshot)
    for job in pending, by (-priority, seq):                     (phase 2: order)
        quota check, restricted to GPU models quota can hold     (phase 3: admit-check quota)
        place the whole gang with the placement policy, within   (phase 4: place gang)
            one RDMA domain when the job asks for topology
        else look for victims to preempt                         (phase 5: preempt)
        else keep waiting, with a reason code and plain words    (phase 6: wait)

A job that cannot run does not block lower-priority jobs from other free resources
(BestEffortFIFO); what a preemptor waits for is held, so they cannot take that.
"""

from __future__ import annotations

from aip.scheduler import reasons
from aip.scheduler.admission import Amounts, QuotaBlock, request_amounts
from aip.scheduler.context import CycleContext, Fit
from aip.scheduler.gang import GangMiss
from aip.scheduler.model import (
    Admit,
    CycleResult,
    PendingJob,
    Preempt,
    Queue,
    ReplicaPlacement,
    Snapshot,
    Wait,
    WaitReason,
)
from aip.scheduler.placement import PlacementPolicy
from aip.scheduler.policies import DEFAULT_POLICY, make_policy
from aip.scheduler.preemption import find_preemption, reserve
from aip.scheduler.topology import domain_room


def schedule(snapshot: Snapshot, policy: PlacementPolicy | None = None) -> CycleResult:
    """Decide, for every pending job, admit (with placements), preempt for it, or wait.
    ``policy`` defaults to the platform's (``policies.DEFAULT_POLICY``) with its built-in
    workload."""
    ctx = CycleContext.build(snapshot, policy or make_policy(DEFAULT_POLICY))
    admitted: list[Admit] = []
    preempted: list[Preempt] = []
    waiting: list[Wait] = []
    for job in sorted(snapshot.pending, key=lambda job: (-job.priority, job.seq)):
        queue = ctx.book.queues.get(job.queue)
        if queue is None:
            waiting.append(Wait(job.job_id, WaitReason.QUEUE_NOT_FOUND,
                                f"queue {job.queue!r} does not exist; create it or resubmit "
                                "to an existing queue"))
            continue
        amounts = request_amounts(job)
        fit = ctx.quota_fit(job, queue, amounts)
        if isinstance(fit, Fit):
            placements = ctx.place(fit)
            if not isinstance(placements, GangMiss):
                admitted.append(_admit(ctx, job, queue, placements))
                continue
        preemption = _preempt(ctx, job, queue, amounts)
        if isinstance(preemption, Admit):
            admitted.append(preemption)
            continue
        if preemption is not None:
            preempted.extend(preemption[0])
            waiting.append(preemption[1])
            continue
        waiting.append(_wait(ctx, job, fit))
    return CycleResult(tuple(admitted), tuple(preempted), tuple(waiting))


def _admit(ctx: CycleContext, job: PendingJob, queue: Queue,
           placements: list[ReplicaPlacement]) -> Admit:
    ctx.admit(queue, placements)
    return Admit(job.job_id, tuple(placements))


def _preempt(ctx: CycleContext, job: PendingJob, queue: Queue,
             amounts: Amounts) -> tuple[list[Preempt], Wait] | Admit | None:
    plan = find_preemption(ctx, job, queue, amounts)
    if plan is None:
        return None
    if not plan.victims:
        for placement in plan.placements:
            ctx.state.allocate(placement)
        return _admit(ctx, job, queue, list(plan.placements))
    reserve(ctx, job, queue, plan)
    preempts = [Preempt(victim.job_id, job.job_id,
                        reasons.preemption_reason(job.job_id, job.priority, queue.name, victim))
                for victim in plan.victims]
    wait = Wait(job.job_id, WaitReason.WAITING_FOR_PREEMPTION,
                reasons.preemption_wait(plan.victims, job.priority))
    return preempts, wait


def _wait(ctx: CycleContext, job: PendingJob, fit: Fit | list[QuotaBlock]) -> Wait:
    if not isinstance(fit, Fit):
        blocks = tuple(fit)
        text = ctx.quota_waits.get(blocks)
        if text is None:
            text = ctx.quota_waits[blocks] = reasons.quota_reason(blocks)
        return Wait(job.job_id, WaitReason.WAITING_FOR_QUOTA, text)
    key = (fit.key, job.priority)
    cached = ctx.capacity_waits.get(key)
    if cached is None:
        cached = ctx.capacity_waits[key] = _capacity_wait(ctx, fit, job.priority)
    return Wait(job.job_id, *cached)


def _capacity_wait(ctx: CycleContext, fit: Fit, priority: int) -> tuple[WaitReason, str]:
    blockers = ctx.fits_without_holds(fit) if ctx.holds else []
    if blockers:
        return (WaitReason.BLOCKED_BY_HIGHER_PRIORITY, reasons.blocked_reason(
            [(hold.job_id, hold.priority) for hold in blockers], priority))
    miss = ctx.gang_misses[fit.key]
    replica = miss.replica
    count = sum(role.count for role in fit.job.roles if role.role == replica.role)
    found = reasons.capacity_reason(ctx.state, replica.request, replica.models, replica.role,
                                    count)
    if found is not None:
        return found
    if miss.within_domain:
        return WaitReason.TOPOLOGY, reasons.topology_reason(
            miss.total, domain_room(ctx.state, fit.replicas, ctx.policy))
    return WaitReason.INSUFFICIENT_RESOURCES, reasons.gang_reason(miss)
