"""Preemption: who is stopped for whom, and what the preemptor waits for."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from aip.scheduler import Allocation, Node, PendingJob, Queue, WaitReason, schedule

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


@dataclass
class Case:
    nodes: list[Node]
    running: list[Allocation]
    pending: list[PendingJob]
    queues: list[Queue] = field(default_factory=lambda: [queue("team-a"), queue("team-b")])
    preempted: dict[str, str] = field(default_factory=dict)  # victim -> preemptor
    admitted: set[str] = field(default_factory=set)
    waiting: dict[str, WaitReason] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)  # job -> exact wait reason


GPU4 = [make_node("n1", cpu=32, gpus=4)]
WAITING = WaitReason.WAITING_FOR_PREEMPTION

CASES = [
    pytest.param(Case(
        queues=[queue("team-a", gpu=2)], nodes=GPU4,
        running=[running("low", placed("n1", gpus=(0, 1)), queue="team-a", priority=0)],
        pending=[make_job("high", "team-a", priority=10).gpu(2).build()],
        preempted={"low": "high"}, waiting={"high": WAITING},
        reasons={"high": "waiting for 1 lower-priority job to stop: low"},
    ), id="a higher-priority job preempts a lower one of its queue for quota"),
    pytest.param(Case(
        queues=[queue("team-a", gpu=2)], nodes=GPU4,
        running=[running("peer", placed("n1", gpus=(0, 1)), queue="team-a", priority=10)],
        pending=[make_job("same", "team-a", priority=10).gpu(2).build()],
        waiting={"same": WaitReason.WAITING_FOR_QUOTA},
    ), id="equal priority never preempts"),
    pytest.param(Case(
        queues=[queue("team-a", gpu=2)], nodes=GPU4,
        running=[running("pinned", placed("n1", gpus=(0, 1)), queue="team-a", priority=0,
                         preemptible=False)],
        pending=[make_job("high", "team-a", priority=10).gpu(2).build()],
        waiting={"high": WaitReason.WAITING_FOR_QUOTA},
    ), id="a non-preemptible job is never a victim"),
    pytest.param(Case(
        nodes=GPU4,
        running=[running("b-low", placed("n1", gpus=(0, 1, 2, 3)), queue="team-b")],
        pending=[make_job("a-high", "team-a", priority=10).gpu(2).build()],
        preempted={"b-low": "a-high"}, waiting={"a-high": WAITING},
    ), id="for capacity, a lower-priority job of another queue is preempted"),
    pytest.param(Case(
        nodes=[make_node("n1", gpus=3)],
        running=[running("p1", placed("n1", gpus=(0,)), priority=1, seq=1, queue="team-b"),
                 running("p0-old", placed("n1", gpus=(1,)), priority=0, seq=2, queue="team-b"),
                 running("p0-new", placed("n1", gpus=(2,)), priority=0, seq=3, queue="team-b")],
        pending=[make_job("high", "team-a", priority=10).gpu(1).build()],
        preempted={"p0-new": "high"}, waiting={"high": WAITING},
    ), id="the cheapest victim goes: lowest priority, then most recently admitted"),
    pytest.param(Case(
        nodes=GPU4,
        running=[running(f"r{i}", placed("n1", gpus=(i,)), seq=i, queue="team-b")
                 for i in range(4)],
        pending=[make_job("pair", "team-a", priority=10).gpu(2).build()],
        preempted={"r3": "pair", "r2": "pair"}, waiting={"pair": WAITING},
    ), id="only as many victims as the job needs"),
    pytest.param(Case(
        nodes=[make_node("t4", gpus=1, model="T4"), make_node("v100", gpus=1, model="V100M32")],
        running=[running("on-v100", placed("v100", gpus=(0,), model="V100M32"), seq=1,
                         queue="team-b"),
                 running("on-t4", placed("t4", gpus=(0,)), seq=2, queue="team-b")],
        pending=[make_job("v100-job", "team-a", priority=10).gpu(1, "V100M32").build()],
        preempted={"on-v100": "v100-job"}, waiting={"v100-job": WAITING},
    ), id="only victims that hold what the job can use are preempted"),
    pytest.param(Case(
        nodes=[make_node("n1", gpus=2)],
        running=[running("low", placed("n1", gpus=(0, 1)), queue="team-b")],
        pending=[make_job("h1", "team-a", priority=10, seq=1).gpu(1).build(),
                 make_job("h2", "team-a", priority=10, seq=2).gpu(1).build()],
        preempted={"low": "h1"},
        waiting={"h1": WAITING, "h2": WaitReason.INSUFFICIENT_RESOURCES},
    ), id="a victim is chosen for one job only in a cycle"),
    pytest.param(Case(
        nodes=GPU4,
        running=[running("low", placed("n1", gpus=(0, 1)), queue="team-b")],
        pending=[make_job("high", "team-a", priority=10).gpu(4).build(),
                 make_job("mid", "team-b", priority=5).gpu(1).build()],
        preempted={"low": "high"},
        waiting={"high": WAITING, "mid": WaitReason.BLOCKED_BY_HIGHER_PRIORITY},
        reasons={"high": "waiting for 1 lower-priority job to stop: low",
                 "mid": "waiting behind higher-priority jobs: the capacity it needs is being "
                        "freed for high (priority 10)"},
    ), id="lower-priority jobs cannot slip into capacity held for a preemptor"),
    pytest.param(Case(
        queues=[queue("team-a", gpu=4)], nodes=[make_node("n1", gpus=8)],
        running=[running("low", placed("n1", gpus=(0, 1)), queue="team-a")],
        pending=[make_job("high", "team-a", priority=10).gpu(4).build(),
                 make_job("mid", "team-a", priority=5).gpu(1).build()],
        preempted={"low": "high"},
        waiting={"high": WAITING, "mid": WaitReason.WAITING_FOR_QUOTA},
        reasons={"high": "waiting for 1 lower-priority job to stop: low",
                 "mid": "queue team-a: gpu quota 2/4 in use, 2 held for preempting jobs "
                        "(job needs 1)"},
    ), id="quota a preemptor will need is held from lower-priority jobs"),
    pytest.param(Case(
        queues=[queue("team-a", "research", gpu=2), queue("team-b", "research", gpu=2)],
        nodes=GPU4,
        running=[running("b-old", placed("n1", gpus=(0, 1)), queue="team-b", priority=10, seq=1),
                 running("b-new", placed("n1", gpus=(2, 3)), queue="team-b", priority=10, seq=2)],
        pending=[make_job("mine", "team-a", priority=0).gpu(2).build()],
        preempted={"b-new": "mine"}, waiting={"mine": WAITING},
        reasons={"mine": "waiting for 1 job to stop, reclaiming quota its cohort lent to other "
                         "queues: b-new"},
    ), id="a queue reclaims its lent quota, whatever the borrower's priority"),
    pytest.param(Case(
        queues=[queue("team-a", "research", gpu=2), queue("team-b", "research", gpu=2)],
        nodes=[make_node("n1", gpus=6)],
        running=[running(f"b{i}", placed("n1", gpus=(i,)), queue="team-b", priority=10, seq=i)
                 for i in range(3)],
        pending=[make_job("mine", "team-a").gpu(2).build()],
        preempted={"b2": "mine"}, waiting={"mine": WAITING},
    ), id="reclaim takes back only what was borrowed"),
    pytest.param(Case(
        queues=[queue("team-a", "research", gpu=2), queue("team-b", "research", gpu=2)],
        nodes=GPU4,
        running=[running("b-old", placed("n1", gpus=(0, 1)), queue="team-b", priority=10, seq=1),
                 running("b-new", placed("n1", gpus=(2, 3)), queue="team-b", priority=10, seq=2)],
        pending=[make_job("greedy", "team-a").gpu(3).build()],
        waiting={"greedy": WaitReason.WAITING_FOR_QUOTA},
    ), id="there is no reclaiming beyond a queue's own nominal quota"),
    pytest.param(Case(
        queues=[queue("team-a", gpu_V100M32=1, gpu_T4=1, gpu_any=0)],
        nodes=[make_node("small-v100", memory=4, gpus=1, model="V100M32"),
               make_node("free-v100", memory=64, gpus=1, model="V100M32"),
               make_node("small-t4", memory=4, gpus=1, model="T4")],
        running=[running("low", placed("small-v100", gpus=(0,), model="V100M32"),
                         queue="team-a")],
        pending=[make_job("high", "team-a", priority=10).gpu(1).memory(8).build()],
        preempted={"low": "high"}, waiting={"high": WAITING},
    ), id="a victim gives back per-model quota while the room is on another node"),
    pytest.param(Case(
        nodes=GPU4,
        running=[running("low", placed("n1", gpus=(0, 1)), queue="team-b")],
        pending=[make_job("huge", "team-a", priority=10).gpu(8).build()],
        waiting={"huge": WaitReason.INSUFFICIENT_RESOURCES},
    ), id="nobody is preempted when it could not help"),
    pytest.param(Case(
        nodes=[make_node("n1", gpus=2), make_node("n2", gpus=2)],
        running=[running("l1", placed("n1", gpus=(0, 1)), queue="team-b"),
                 running("l2", placed("n2", gpus=(0, 1)), queue="team-b")],
        pending=[make_job("gang", "team-a", priority=10).replicas(worker=2).gpu(2).build()],
        preempted={"l1": "gang", "l2": "gang"}, waiting={"gang": WAITING},
    ), id="a gang preempts on several nodes"),
    pytest.param(Case(
        queues=[queue("team-a", gpu=4), queue("team-b")], nodes=[make_node("n1", gpus=8)],
        running=[running("low", placed("n1", gpus=(0, 1, 2, 3)), queue="team-a")],
        pending=[make_job("high", "team-a", priority=10).gpu(2).build(),
                 make_job("other", "team-b", priority=0).gpu(4).build()],
        preempted={"low": "high"}, admitted={"other"}, waiting={"high": WAITING},
    ), id="jobs of other queues still use other free capacity"),
]


@pytest.mark.parametrize("case", CASES)
def test_preemption(case: Case) -> None:
    snap = snapshot(case.nodes, case.pending, case.running, case.queues)
    result = schedule(snap)
    assert preempted(result) == case.preempted
    assert set(admitted(result)) == case.admitted
    assert {job: wait.code for job, wait in waits(result).items()} == case.waiting
    for job, reason in case.reasons.items():
        assert waits(result)[job].reason == reason
    assert_not_overallocated(snap, after_admits(snap, result))
    assert_gangs_whole(snap, result)


def test_preempt_decisions_say_who_and_why() -> None:
    snap = snapshot(GPU4, [make_job("high", "team-a", priority=10).gpu(4).build()],
                    [running("low", placed("n1", gpus=(0, 1, 2, 3)), queue="team-b")],
                    [queue("team-a"), queue("team-b")])
    (decision,) = schedule(snap).preempted
    assert (decision.job_id, decision.for_job) == ("low", "high")
    assert decision.reason == "preempted by job high (priority 10) in queue team-a"
