"""Network topology: a gang that asks for it stays within one RDMA domain.

Two domains of two 4-GPU nodes each (a1, a2 in pod-a; b1, b2 in pod-b), sometimes with
unlabelled nodes (u1, u2) next to them. The gang is 4 workers of 2 GPUs unless a case says
otherwise.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cache

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from aip.scheduler import (
    TOPOLOGY_LABEL,
    Allocation,
    BestFitPolicy,
    Choice,
    ClusterState,
    CycleResult,
    Node,
    PendingJob,
    PlacementPolicy,
    Queue,
    ReplicaRequest,
    Snapshot,
    WaitReason,
    candidates,
    domains_spanned,
    infeasible_reason,
    schedule,
)
from aip.scheduler.policies import make_policy, policy_names
from aip.scheduler.topology import domains_of

from .builders import (
    admitted,
    make_job,
    make_node,
    placed,
    preempted,
    queue,
    running,
    snapshot,
    waits,
)
from .invariants import after_admits, assert_gangs_whole, assert_not_overallocated
from .test_properties import PROPERTY, ScoreEveryCandidate, clusters, requests

UNLABELLED = "-"


def pods(*extra: Node) -> list[Node]:
    return [*(make_node(f"{domain[-1]}{i}", cpu=32, memory=128, gpus=4, domain=domain)
              for domain in ("pod-a", "pod-b") for i in (1, 2)), *extra]


def gang(topology: str, job_id: str = "gang", workers: int = 4, gpu: float = 2,
         queue_name: str = "default", priority: int = 0) -> PendingJob:
    return make_job(job_id, queue_name, priority).replicas(worker=workers).gpu(gpu) \
        .topology(topology).build()


def domains_used(snap: Snapshot, result: CycleResult, job_id: str) -> set[str]:
    """The domains of an admitted job's nodes; unlabelled nodes show as "-"."""
    labels = {node.name: node.labels.get(TOPOLOGY_LABEL, UNLABELLED) for node in snap.nodes}
    return {labels[p.node] for p in admitted(result)[job_id]}


@dataclass
class Case:
    nodes: list[Node]
    pending: list[PendingJob]
    running: list[Allocation] = field(default_factory=list)
    queues: list[Queue] = field(default_factory=lambda: [queue()])
    domains: dict[str, set[str]] = field(default_factory=dict)  # admitted job -> domains used
    waiting: dict[str, WaitReason] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)  # job -> exact wait reason
    preempted: dict[str, str] = field(default_factory=dict)  # victim -> preemptor


# pod-a keeps room for 3 two-GPU replicas, pod-b for 2: 10 GPUs free, no domain with 8
SPLIT = [running("a-busy", placed("a1", gpus=(0, 1))),
         running("b-busy", placed("b1", gpus=(0, 1, 2, 3)))]
NO_ROOM = ("topology required: no single RDMA domain (aip.io/rdma-domain) has room for all 4 "
           "replicas (pod-a has room for 3, pod-b for 2)")
TOPOLOGY = WaitReason.TOPOLOGY

CASES = [
    pytest.param(Case(
        pods(), [gang("required")], domains={"gang": {"pod-a"}},
    ), id="required: the gang lands within one domain when one has room"),
    pytest.param(Case(
        pods(), [gang("required", gpu=1)],
        running=[running("b-busy", placed("b1", gpus=(0, 1)))], domains={"gang": {"pod-b"}},
    ), id="required: the tightest domain that holds the gang is filled first"),
    pytest.param(Case(
        pods(), [gang("required")], running=SPLIT,
        waiting={"gang": TOPOLOGY}, reasons={"gang": NO_ROOM},
    ), id="required: waits when no single domain has room, though the cluster has"),
    pytest.param(Case(
        pods(), [gang("preferred")], running=SPLIT, domains={"gang": {"pod-a", "pod-b"}},
    ), id="preferred: spans domains when no single one has room"),
    pytest.param(Case(
        pods(), [gang("none")], running=SPLIT, domains={"gang": {"pod-a", "pod-b"}},
    ), id="none: spans domains as before"),
    pytest.param(Case(
        pods(), [gang("preferred", gpu=1)],
        running=[running("a-busy", placed("a1", gpus=(0, 1, 2))),
                 running("b-busy", placed("b1", gpus=(0, 1, 2)))],
        domains={"gang": {"pod-a"}},
    ), id="preferred: packs into one domain when one has room"),
    pytest.param(Case(
        pods(), [gang("required", "first"), gang("required", "second")],
        domains={"first": {"pod-a"}, "second": {"pod-b"}},
    ), id="required: a second gang takes the other domain"),
    pytest.param(Case(
        pods(), [make_job("mixed").replicas(worker=3).gpu(2).role("ps", 1, cpu=4)
                 .topology("required").build()],
        running=[running("a-busy", placed("a1", gpus=(0, 1, 2, 3)))],
        domains={"mixed": {"pod-b"}},
    ), id="required: every role of the gang shares the domain"),
    pytest.param(Case(
        pods(make_node("u1", cpu=32, memory=128, gpus=8)), [gang("required")], running=SPLIT,
        waiting={"gang": TOPOLOGY}, reasons={"gang": NO_ROOM},
    ), id="required: never uses unlabelled nodes"),
    pytest.param(Case(
        pods(make_node("u1", cpu=32, memory=128, gpus=8)), [gang("preferred")], running=SPLIT,
        domains={"gang": {"pod-a", UNLABELLED}},
    ), id="preferred: falls back to any nodes, unlabelled ones too"),
    pytest.param(Case(
        [make_node("u1", gpus=8), make_node("u2", gpus=8)], [gang("required")],
        waiting={"gang": TOPOLOGY},
        reasons={"gang": "topology required: no schedulable node has the aip.io/rdma-domain "
                         "label, so the 4 replicas cannot be kept within one RDMA domain"},
    ), id="required: without any labelled node the job waits and says why"),
    pytest.param(Case(
        [make_node("u1", gpus=8)], [gang("required", workers=1)], domains={"gang": {UNLABELLED}},
    ), id="a single replica cannot span domains: topology does not apply to it"),
    pytest.param(Case(
        pods(), [gang("required", gpu=8)], waiting={"gang": WaitReason.INSUFFICIENT_RESOURCES},
        reasons={"gang": "needs 8 free GPUs on one node for each of its 4 worker replicas; "
                         "most free is 4"},
    ), id="a replica no node can hold is reported as such, not as topology"),
    # preemption
    pytest.param(Case(
        pods(), [gang("required", queue_name="team-a", priority=10)],
        running=[running("low-a", placed("a1", gpus=(0, 1)), queue="team-b", seq=1),
                 running("low-b", placed("b1", gpus=(0, 1)), queue="team-b", seq=2)],
        queues=[queue("team-a"), queue("team-b")],
        preempted={"low-b": "gang"}, waiting={"gang": WaitReason.WAITING_FOR_PREEMPTION},
    ), id="required preempts so that the gang fits one domain, though it fits spanning"),
    pytest.param(Case(
        pods(), [gang("none", queue_name="team-a", priority=10)],
        running=[running("low-a", placed("a1", gpus=(0, 1)), queue="team-b", seq=1),
                 running("low-b", placed("b1", gpus=(0, 1)), queue="team-b", seq=2)],
        queues=[queue("team-a"), queue("team-b")], domains={"gang": {"pod-a", "pod-b"}},
    ), id="none preempts nothing when the gang fits spanning"),
    pytest.param(Case(
        pods(), [gang("required", queue_name="team-a", priority=10)],
        running=[running("low-a", placed("a1", gpus=(0, 1)), queue="team-b", seq=9),
                 running("pinned", placed("a2", gpus=(0, 1, 2, 3)), queue="team-b",
                         preemptible=False),
                 running("mid-b", placed("b1", gpus=(0, 1)), queue="team-b", priority=1)],
        queues=[queue("team-a"), queue("team-b")],
        preempted={"mid-b": "gang"}, waiting={"gang": WaitReason.WAITING_FOR_PREEMPTION},
    ), id="required skips the cheapest victim when its domain can never hold the gang"),
    pytest.param(Case(
        pods(), [gang("required", gpu=3, queue_name="team-a", priority=10)],
        running=[running("low-a", placed("a1", gpus=(0,)), queue="team-b")],
        queues=[queue("team-a"), queue("team-b")], waiting={"gang": TOPOLOGY},
        reasons={"gang": "topology required: no single RDMA domain (aip.io/rdma-domain) has "
                         "room for all 4 replicas (pod-a has room for 2, pod-b for 2)"},
    ), id="required preempts nothing when no domain could ever hold the gang"),
    pytest.param(Case(
        pods(), [gang("required", queue_name="team-a")],
        running=[running("b-a", placed("a1", gpus=(0, 1)), queue="team-b", priority=5, seq=1),
                 running("b-b", placed("b1", gpus=(0, 1)), queue="team-b", priority=5, seq=2)],
        queues=[queue("team-a", "research", gpu=8), queue("team-b", "research", gpu=2)],
        preempted={"b-b": "gang"}, waiting={"gang": WaitReason.WAITING_FOR_PREEMPTION},
    ), id="reclaiming lent quota also frees room in one domain only"),
]


@pytest.mark.parametrize("case", CASES)
def test_topology(case: Case) -> None:
    snap = snapshot(case.nodes, case.pending, case.running, case.queues)
    result = schedule(snap)
    assert_not_overallocated(snap, after_admits(snap, result))
    assert_gangs_whole(snap, result)
    assert {job: domains_used(snap, result, job) for job in admitted(result)} == case.domains
    assert {job: wait.code for job, wait in waits(result).items()} == case.waiting
    for job, reason in case.reasons.items():
        assert waits(result)[job].reason == reason
    assert preempted(result) == case.preempted


def test_once_its_victim_stops_a_required_gang_lands_in_the_freed_domain() -> None:
    job = gang("required", queue_name="team-a", priority=10)
    low_a = running("low-a", placed("a1", gpus=(0, 1)), queue="team-b", seq=1)
    queues = [queue("team-a"), queue("team-b")]
    low_b = running("low-b", placed("b1", gpus=(0, 1)), queue="team-b", seq=2)
    assert preempted(schedule(snapshot(pods(), [job], [low_a, low_b], queues))) == {
        "low-b": "gang"}
    snap = snapshot(pods(), [job], [low_a], queues)
    assert domains_used(snap, schedule(snap), "gang") == {"pod-b"}


@pytest.mark.parametrize("name", policy_names())
def test_every_policy_keeps_a_required_gang_within_one_domain(name: str) -> None:
    snap = snapshot(pods(), [gang("required", gpu=1, job_id="one"),
                             gang("required", gpu=1, job_id="two")],
                    [running("b-busy", placed("b1", gpus=(0, 1)))])
    result = schedule(snap, make_policy(name, seed=1))
    assert {job: len(domains_used(snap, result, job)) for job in admitted(result)} == {
        "one": 1, "two": 1}


# -- feasibility at submit ----------------------------------------------------------------


FEASIBILITY = [
    pytest.param([make_node("u1", gpus=8), make_node("u2", gpus=8)], gang("required"),
                 "topology required: no schedulable node has the aip.io/rdma-domain label, so "
                 "the 4 replicas can never be kept within one RDMA domain; label the nodes of "
                 "each domain or ask for topology preferred",
                 id="required without any labelled node is rejected"),
    pytest.param(pods(make_node("u1", gpus=8)), gang("required", gpu=3),
                 "topology required: no single RDMA domain (aip.io/rdma-domain) can ever hold "
                 "all 4 replicas: needs 4 worker replicas (3 gpu, 1 cpu, 1Gi) at once; domain "
                 "pod-a holds at most 2; domain pod-b holds at most 2",
                 id="required larger than every domain is rejected, whatever the cluster holds"),
    pytest.param(pods(), gang("preferred", gpu=3), None,
                 id="preferred larger than every domain may span: accepted"),
    pytest.param(pods(), gang("required"), None, id="required that fits one domain: accepted"),
    pytest.param([make_node("u1", gpus=8)], gang("required", workers=1), None,
                 id="a single replica ignores topology: accepted on unlabelled nodes"),
    pytest.param(pods(), gang("required", gpu=8),
                 "needs 8 GPUs on one node for each of its 4 worker "
                 "replicas; the largest node has 4",
                 id="a replica no node can hold is rejected for that first"),
]


@pytest.mark.parametrize(("nodes", "job", "reason"), FEASIBILITY)
def test_feasibility(nodes: list[Node], job: PendingJob, reason: str | None) -> None:
    assert infeasible_reason(nodes, job) == reason


# -- domains_spanned ------------------------------------------------------------------------


@pytest.mark.parametrize(("names", "spanned"), [
    pytest.param([], 0, id="no replicas span no domain"),
    pytest.param(["a1", "a2", "a1"], 1, id="nodes of one domain span one"),
    pytest.param(["a1", "b2"], 2, id="nodes of two domains span two"),
    pytest.param(["a1", "u1"], 1, id="unlabelled nodes are not counted"),
    pytest.param(["u1", "ghost"], 0, id="nor unknown nodes"),
])
def test_domains_spanned(names: list[str], spanned: int) -> None:
    assert domains_spanned(pods(make_node("u1")), names) == spanned


# -- invariants on random clusters ---------------------------------------------------------

DOMAINS = (None, "pod-a", "pod-a", "pod-b", "pod-b", "pod-c")


@st.composite
def labelled(draw: st.DrawFn, pending: tuple[int, int] = (1, 5),
             topologies: tuple[str, ...] = ("none", "preferred", "required", "required"),
             pending_priority: tuple[int, int] = (0, 3), quota: bool | None = None) -> Snapshot:
    """A random cluster (as the cycle properties draw it) whose nodes get random domains and
    whose pending jobs ask for random topologies; ``quota`` None: queues with quota now and
    then (mostly capacity alone: quota blocks would hide topology)."""
    if quota is None:
        quota = draw(st.integers(0, 3)) == 0
    snap = draw(clusters(node_count=(2, 6), pending=pending, quota=quota, roomy=True, busy=8,
                         pending_priority=pending_priority))
    nodes = tuple(dataclasses.replace(node, labels={} if domain is None else {
        TOPOLOGY_LABEL: domain}) for node in snap.nodes
        for domain in [draw(st.sampled_from(DOMAINS))])
    jobs = tuple(dataclasses.replace(job, topology=draw(st.sampled_from(topologies)))
                 for job in snap.pending)
    return dataclasses.replace(snap, nodes=nodes, pending=jobs)


def _assert_required_within_one_domain(snap: Snapshot, result: CycleResult) -> None:
    jobs = {job.job_id: job for job in snap.pending}
    labels = {node.name: node.labels.get(TOPOLOGY_LABEL) for node in snap.nodes}
    for admit in result.admitted:
        job = jobs[admit.job_id]
        if job.topology == "required" and job.replica_count > 1:
            event("a required gang admitted")
            used = {labels[p.node] for p in admit.placements}
            assert len(used) == 1 and None not in used, f"{job.job_id} spans {used}"


@PROPERTY
@given(labelled())
def test_a_required_gang_never_spans_domains(snap: Snapshot) -> None:
    result = schedule(snap)
    assert_not_overallocated(snap, after_admits(snap, result))
    assert_gangs_whole(snap, result)
    _assert_required_within_one_domain(snap, result)
    assert schedule(snap) == result, "a cycle is deterministic"


@PROPERTY
@given(labelled(pending=(1, 1), topologies=("required",), pending_priority=(2, 4)))
def test_what_a_required_gang_preempts_lets_it_land_in_one_domain(snap: Snapshot) -> None:
    result = schedule(snap)
    if not result.preempted:
        return
    event("preempted")
    victims = {decision.job_id for decision in result.preempted}
    after = dataclasses.replace(snap, running=tuple(
        a for a in snap.running if a.job_id not in victims))
    again = schedule(after)
    assert [admit.job_id for admit in again.admitted] == [snap.pending[0].job_id]
    _assert_required_within_one_domain(after, again)


@PROPERTY
@given(labelled(pending=(1, 1), topologies=("required",), pending_priority=(2, 4), quota=False))
def test_a_required_gang_that_preemption_could_place_is_admitted_or_preempts(
        snap: Snapshot) -> None:
    """If the gang fits one domain once every lower-priority preemptible job is gone, the cycle
    admits it or preempts for it (queues without quota: capacity alone)."""
    (job,) = snap.pending
    lower = {a.job_id for a in snap.running if a.preemptible and a.priority < job.priority}
    freed = dataclasses.replace(snap, running=tuple(
        a for a in snap.running if a.job_id not in lower))
    if job.queue in {q.name for q in snap.queues} and any(
            admit.job_id == job.job_id for admit in schedule(freed).admitted):
        event("fits once lower-priority jobs stop")
        result = schedule(snap)
        assert result.admitted or result.preempted, f"{job.job_id} left waiting: {result}"


@PROPERTY
@given(labelled(pending=(0, 0)), requests(), st.data())
def test_every_policy_chooses_within_the_restriction(
        snap: Snapshot, request: ReplicaRequest, data: st.DataObject) -> None:
    state = ClusterState.from_snapshot(snap.nodes, snap.running)
    groups = list(domains_of(state).members.values())
    if not groups:
        return
    only = data.draw(st.sampled_from(groups))
    models = request.gpu_types or None
    with state.only_on(only):
        some = any(True for _ in candidates(state, request, models))
        assert _spot(BestFitPolicy().choose(state, request, models)) == _spot(
            ScoreEveryCandidate().choose(state, request, models))
        for name in policy_names():
            choice = _policy(name).choose(state, request, models)
            assert (choice is not None) == some, name
            assert choice is None or choice.node.position in only, name
    assert state.only is None


@cache
def _policy(name: str) -> PlacementPolicy:
    return make_policy(name)


def _spot(choice: Choice | None) -> tuple[str, str | None, tuple[int, ...]] | None:
    return None if choice is None else (choice.node.name, choice.gpu_model, choice.gpu_slots)
