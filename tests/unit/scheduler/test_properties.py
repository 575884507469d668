"""Invariants of a cycle on random small clusters (hypothesis).

1. nothing is over-allocated once the admitted jobs start (GPU milli, whole GPUs exclusive,
   cpu, memory, accelerator ids);
2. a gang is admitted whole, with the right roles and indices, or not at all;
3. no queue goes beyond what its quota and borrowing allow;
4. a higher-priority job is never left waiting while lower-priority preemptible jobs hold
   what it needs: if stopping them all would let it in, the cycle admits it or preempts for it,
   and the jobs it preempts do free enough room.
Also: the default policy's index walk agrees with scoring every candidate, and
``infeasible_reason`` never rejects a job the empty cluster can hold.
"""

from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from aip.scheduler import (
    Allocation,
    BestFitPolicy,
    ClusterState,
    Node,
    PendingJob,
    Queue,
    ReplicaRequest,
    RoleRequest,
    ScoredPolicy,
    Snapshot,
    WaitReason,
    best_fit_score,
    infeasible_reason,
    schedule,
)
from aip.scheduler.placement import Choice, Score

from .builders import GI, make_node
from .invariants import (
    after_admits,
    assert_gangs_whole,
    assert_not_overallocated,
    assert_quota_kept,
)

MODELS = ("T4", "V100M32", "A10")
PROPERTY = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def nodes(draw: st.DrawFn, count: tuple[int, int] = (1, 4), roomy: bool = False) -> list[Node]:
    out = []
    for i in range(draw(st.integers(*count))):
        gpus = draw(st.sampled_from((1, 2, 4) if roomy else (0, 1, 2, 4)))
        models = draw(st.lists(st.sampled_from(MODELS), min_size=gpus, max_size=gpus)
                      if draw(st.booleans()) else st.just([draw(st.sampled_from(MODELS))] * gpus))
        out.append(make_node(
            f"n{i}", cpu=draw(st.sampled_from((8, 16) if roomy else (2, 4, 8, 16))),
            memory=draw(st.sampled_from((32, 64) if roomy else (4, 16, 64))), models=models,
            accelerators={"fpga": draw(st.integers(0, 2))},
            schedulable=draw(st.integers(0, 9)) > 0))
    return out


@st.composite
def requests(draw: st.DrawFn) -> ReplicaRequest:
    gpu = draw(st.sampled_from((0, 0, 250, 500, 750, 1000, 1000, 2000, 4000)))
    types = draw(st.sets(st.sampled_from(MODELS), max_size=2)) if draw(st.booleans()) else set()
    fpga = draw(st.integers(0, 2)) if draw(st.integers(0, 4)) == 0 else 0
    return ReplicaRequest(draw(st.sampled_from((500, 1000, 2000, 4000))),
                          draw(st.sampled_from((1, 2, 8))) * GI, gpu,
                          frozenset(types) if gpu else frozenset(),
                          (("fpga", fpga),) if fpga else ())


@st.composite
def jobs(draw: st.DrawFn, job_id: str, queues: list[str], seq: int,
         small: bool = False) -> PendingJob:
    roles = tuple(RoleRequest(name, draw(st.integers(1, 2 if small else 3)), draw(requests()))
                  for name in ("worker", "ps")[:draw(st.integers(1, 1 if small else 2))])
    return PendingJob(job_id, draw(st.sampled_from(queues)), draw(st.integers(0, 3)), seq, roles)


@st.composite
def quotas(draw: st.DrawFn, name: str, cohort: str | None) -> Queue:
    nominal: dict[str, int] = {}
    if draw(st.booleans()):
        nominal["cpu"] = draw(st.sampled_from((0, 2000, 8000)))
    if draw(st.booleans()):
        nominal["gpu"] = draw(st.sampled_from((0, 1000, 2500, 4000)))
    if draw(st.booleans()):
        nominal["gpu/T4"] = draw(st.sampled_from((0, 1000, 2000)))
        nominal["gpu/*"] = draw(st.sampled_from((0, 2000)))
    if draw(st.booleans()):
        nominal["acc/fpga"] = draw(st.integers(0, 2))
    limit = None
    if cohort is not None and draw(st.booleans()):
        limit = {key: draw(st.sampled_from((0, 1000))) for key in nominal}
    return Queue(name, cohort, nominal, limit)


@st.composite
def clusters(draw: st.DrawFn, *, quota: bool = True, cohorts: bool = True,
             queue_count: tuple[int, int] = (1, 3), pending: tuple[int, int] = (1, 5),
             busy: int = 6, pending_priority: tuple[int, int] = (0, 3),
             node_count: tuple[int, int] = (1, 4), roomy: bool = False) -> Snapshot:
    """Random nodes, queues, a running set (placed by the scheduler on the empty cluster, then
    given random owners and priorities) and pending jobs (a few to unknown queues)."""
    cluster = draw(nodes(node_count, roomy))
    names = [f"q{i}" for i in range(draw(st.integers(*queue_count)))]
    queues = [draw(quotas(name, draw(st.sampled_from((None, "c"))) if cohorts else None))
              if quota else Queue(name) for name in names]
    warmup = [draw(jobs(f"r{i}", ["any"], i, small=True))
              for i in range(draw(st.integers(0, busy)))]
    placed = schedule(Snapshot(tuple(cluster), (Queue("any"),), (), tuple(warmup))).admitted
    running = tuple(
        Allocation(admit.job_id, draw(st.sampled_from(names)), draw(st.integers(0, 3)), i,
                   admit.placements, preemptible=draw(st.integers(0, 4)) > 0)
        for i, admit in enumerate(placed))
    targets = [*names, "missing"] if draw(st.integers(0, 5)) == 0 else names
    waiting: list[PendingJob] = []
    for i in range(draw(st.integers(*pending))):
        job = draw(jobs(f"p{i}", targets, 100 + i))
        copy = draw(st.booleans())
        if warmup and copy:  # the shape of a running job: likely contested
            job = dataclasses.replace(job, roles=draw(st.sampled_from(warmup)).roles)
        waiting.append(dataclasses.replace(job, priority=draw(st.integers(*pending_priority))))
    return Snapshot(tuple(cluster), tuple(queues), running, tuple(waiting))


@PROPERTY
@given(clusters())
def test_a_cycle_never_overallocates_splits_gangs_or_breaks_quota(snap: Snapshot) -> None:
    result = schedule(snap)
    assert_not_overallocated(snap, after_admits(snap, result))
    assert_gangs_whole(snap, result)
    assert_quota_kept(snap, result)
    assert schedule(snap) == result, "a cycle is deterministic"
    victims = [decision.job_id for decision in result.preempted]
    assert len(victims) == len(set(victims)), "a victim is chosen once"
    running = {allocation.job_id: allocation for allocation in snap.running}
    preemptors = {w.job_id for w in result.waiting if w.code == WaitReason.WAITING_FOR_PREEMPTION}
    for decision in result.preempted:
        assert running[decision.job_id].preemptible
        assert decision.for_job in preemptors


@PROPERTY
@given(st.booleans().flatmap(lambda single_queue: clusters(
    quota=single_queue, cohorts=False, queue_count=(1, 1) if single_queue else (1, 3),
    pending=(1, 1), busy=12, pending_priority=(1, 4), node_count=(1, 2), roomy=True)))
def test_a_job_that_preemption_could_free_is_admitted_or_preempts(snap: Snapshot) -> None:
    """One pending job J, and either a single queue with quota and no cohort or queues
    without quota (capacity only). If J fits once every preemptible job of lower priority is
    gone, the cycle admits J or preempts for it, and what it preempts is enough."""
    (job,) = snap.pending
    result = schedule(snap)
    lower = {a.job_id for a in snap.running if a.preemptible and a.priority < job.priority}
    if _admits(_without(snap, lower), job) and job.queue != "missing":
        event("fits once lower-priority jobs stop")
        if result.preempted:
            event("preempted")
        assert result.admitted or result.preempted, f"{job.job_id} left waiting: {result}"
    if result.preempted:
        victims = {decision.job_id for decision in result.preempted}
        assert victims <= lower
        assert all(decision.for_job == job.job_id for decision in result.preempted)
        assert result.waiting[0].code == WaitReason.WAITING_FOR_PREEMPTION
        assert _admits(_without(snap, victims), job), "the victims free enough room"


def _without(snap: Snapshot, job_ids: set[str]) -> Snapshot:
    return dataclasses.replace(snap, running=tuple(
        a for a in snap.running if a.job_id not in job_ids))


def _admits(snap: Snapshot, job: PendingJob) -> bool:
    return any(a.job_id == job.job_id for a in schedule(snap).admitted)


class ScoreEveryCandidate(ScoredPolicy):
    def score(self, state: ClusterState, request: ReplicaRequest, choice: Choice) -> Score:
        return best_fit_score(state, request, choice)


@PROPERTY
@given(clusters(pending=(0, 0)), requests(), st.sampled_from(
    (None, frozenset({"T4"}), frozenset({"V100M32", "A10"}))))
def test_best_fit_walks_the_indexes_to_the_best_scored_candidate(
        snap: Snapshot, request: ReplicaRequest, models: frozenset[str] | None) -> None:
    state = ClusterState.from_snapshot(snap.nodes, snap.running)
    if request.gpu_milli == 0:
        models = None
    fast = BestFitPolicy().choose(state, request, models)
    slow = ScoreEveryCandidate().choose(state, request, models)
    assert _spot(fast) == _spot(slow)


def _spot(choice: Choice | None) -> object:
    return None if choice is None else (choice.node.name, choice.gpu_model, choice.gpu_slots)


@PROPERTY
@given(nodes(), st.data())
def test_infeasible_reason_never_rejects_what_the_empty_cluster_holds(
        cluster: list[Node], data: st.DataObject) -> None:
    job = data.draw(jobs("j", ["q"], 1))
    empty = Snapshot(tuple(cluster), (Queue("q"),), (), (job,))
    fits = bool(schedule(empty).admitted)
    reason = infeasible_reason(cluster, job)
    if fits:
        assert reason is None
    if job.replica_count == 1:
        assert (reason is None) == fits, reason
