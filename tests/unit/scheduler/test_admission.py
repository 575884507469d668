"""Admission: quota, borrowing within a cohort, per-model quota, order, unknown queues."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from aip.scheduler import (
    Allocation,
    Node,
    PendingJob,
    Queue,
    Snapshot,
    WaitReason,
    queue_usage,
    schedule,
)

from .builders import GI, admitted, make_job, make_node, placed, queue, running, snapshot, waits
from .invariants import assert_quota_kept

BIG = [make_node("n1", cpu=64, memory=256, gpus=8), make_node("n2", cpu=64, memory=256, gpus=8)]


@dataclass
class Case:
    queues: list[Queue]
    pending: list[PendingJob]
    running: list[Allocation] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=lambda: list(BIG))
    admitted: set[str] = field(default_factory=set)
    waiting: dict[str, str] = field(default_factory=dict)  # job -> exact reason
    code: WaitReason = WaitReason.WAITING_FOR_QUOTA


CASES = [
    pytest.param(Case(
        queues=[queue("team-a", gpu=4)],
        running=[running("old", placed("n1", gpus=(0, 1, 2)), queue="team-a")],
        pending=[make_job("two", "team-a").gpu(2).build(),
                 make_job("one", "team-a").gpu(1).build()],
        admitted={"one"},
        waiting={"two": "queue team-a: gpu quota 3/4 in use (job needs 2)"},
    ), id="a queue without a cohort stops at its nominal quota"),
    pytest.param(Case(
        queues=[queue("team-a", cpu=4)],
        pending=[make_job("gpus", "team-a").gpu(8).build()],
        admitted={"gpus"},
    ), id="a resource missing from the quota is unlimited"),
    pytest.param(Case(
        queues=[queue("team-a", cpu=2, memory=16)],
        running=[running("old", placed("n1", cpu=1, memory=12), queue="team-a")],
        pending=[make_job("mem", "team-a").memory(8).build(),
                 make_job("cpu", "team-a").cpu(1.5).build()],
        waiting={"mem": "queue team-a: memory quota 12Gi/16Gi in use (job needs 8Gi)",
                 "cpu": "queue team-a: cpu quota 1/2 in use (job needs 1.5)"},
    ), id="cpu and memory quota speak in cores and Gi"),
    pytest.param(Case(
        queues=[queue("team-a", "research", gpu=2), queue("team-b", "research", gpu=2)],
        pending=[make_job("borrower", "team-a").gpu(4).build()],
        admitted={"borrower"},
    ), id="a queue borrows the idle quota of its cohort"),
    pytest.param(Case(
        queues=[queue("team-a", "research", {"gpu": 1}, gpu=2), queue("team-b", "research", gpu=2)],
        pending=[make_job("four", "team-a").gpu(4).build(),
                 make_job("three", "team-a").gpu(3).build()],
        admitted={"three"},
        waiting={"four": "queue team-a: gpu quota 0/2 in use (job needs 4); it would borrow 2, "
                         "over its borrowing limit of 1"},
    ), id="the borrowing limit caps how much a queue borrows"),
    pytest.param(Case(
        queues=[queue("team-a", "research", gpu=2), queue("team-b", "research", gpu=2)],
        running=[running("a1", placed("n1", gpus=(0, 1)), queue="team-a"),
                 running("b1", placed("n2", gpus=(0,)), queue="team-b")],
        pending=[make_job("two", "team-a").gpu(2).build(),
                 make_job("one", "team-a").gpu(1).build(),
                 make_job("another", "team-a").gpu(1).build()],
        admitted={"one"},
        waiting={"two": "queue team-a: gpu quota 2/2 in use (job needs 2); cohort research "
                        "has only 1 idle",
                 "another": "queue team-a: gpu quota 3/2 in use (job needs 1); cohort research "
                            "has none idle"},
    ), id="borrowing stops when the cohort has no idle quota"),
    pytest.param(Case(
        queues=[queue("team-a", gpu=2), queue("team-b", gpu=2)],
        pending=[make_job("three", "team-a").gpu(3).build()],
        waiting={"three": "queue team-a: gpu quota 0/2 in use (job needs 3)"},
    ), id="a queue without a cohort never borrows"),
    pytest.param(Case(
        queues=[queue("team-a", gpu_T4=0, gpu_V100M32=2, gpu_any=0)],
        nodes=[make_node("t4", gpus=4, model="T4"), make_node("v100", gpus=2, model="V100M32")],
        pending=[make_job("any-model", "team-a").gpu(1).build()],
        admitted={"any-model"},
    ), id="per-model quota steers the job to a model it may use"),
    pytest.param(Case(
        queues=[queue("team-a", "research", gpu_V100M32=2, gpu_any=0),
                queue("team-b", "research", gpu_V100M32=0)],
        nodes=[make_node("v100", gpus=4, model="V100M32")],
        running=[running("old", placed("v100", gpus=(0, 1), model="V100M32"), queue="team-a")],
        pending=[make_job("more", "team-a").gpu(1, "V100M32").build()],
        waiting={"more": "queue team-a: gpu quota for V100M32 2/2 in use (job needs 1); cohort "
                         "research has none idle"},
    ), id="a per-model quota in use, and nothing idle in the cohort"),
    pytest.param(Case(
        queues=[queue("team-a", gpu_V100M32=2, gpu_any=0)],
        nodes=[make_node("a10", gpus=4, model="A10")],
        pending=[make_job("a10", "team-a").gpu(1, "A10").build()],
        waiting={"a10": "queue team-a has no gpu quota for other GPU models (job needs 1)"},
    ), id="models without their own quota share gpu/*, here none"),
    pytest.param(Case(
        queues=[queue("team-a", gpu_T4=4, gpu_any=1)],
        nodes=[make_node("mixed", models=["T4", "T4", "V100M32", "V100M32"])],
        running=[running("old", placed("mixed", gpus=(2,), model="V100M32"), queue="team-a")],
        pending=[make_job("v100", "team-a").gpu(1, "V100M32").build(),
                 make_job("t4", "team-a").gpu(1, "T4").build()],
        admitted={"t4"},
        waiting={"v100": "queue team-a: gpu quota for other GPU models 1/1 in use (job needs 1)"},
    ), id="usage is charged to the model a job actually runs on"),
    pytest.param(Case(
        queues=[queue("team-a", acc_fpga=1)],
        nodes=[make_node("f", accelerators={"fpga": 4})],
        pending=[make_job("two", "team-a").acc("fpga", 2).build()],
        waiting={"two": "queue team-a: fpga quota 0/1 in use (job needs 2)"},
    ), id="accelerators have quota too"),
    pytest.param(Case(
        queues=[queue("team-a", gpu=1)],
        pending=[make_job("early-low", "team-a", priority=0, seq=1).gpu(1).build(),
                 make_job("late-high", "team-a", priority=5, seq=2).gpu(1).build()],
        admitted={"late-high"},
        waiting={"early-low": "queue team-a: gpu quota 1/1 in use (job needs 1)"},
    ), id="higher priority is admitted first"),
    pytest.param(Case(
        queues=[queue("team-a", gpu=1)],
        pending=[make_job("second", "team-a", seq=2).gpu(1).build(),
                 make_job("first", "team-a", seq=1).gpu(1).build()],
        admitted={"first"},
        waiting={"second": "queue team-a: gpu quota 1/1 in use (job needs 1)"},
    ), id="within a priority, first come first served"),
    pytest.param(Case(
        queues=[queue("team-a")],
        pending=[make_job("lost", "team-x").build()],
        waiting={"lost": "queue 'team-x' does not exist; create it or resubmit to an existing "
                         "queue"},
        code=WaitReason.QUEUE_NOT_FOUND,
    ), id="a job for an unknown queue waits with QueueNotFound"),
]


@pytest.mark.parametrize("case", CASES)
def test_admission(case: Case) -> None:
    snap = snapshot(case.nodes, case.pending, case.running, case.queues)
    result = schedule(snap)
    assert set(admitted(result)) == case.admitted
    assert {job: wait.reason for job, wait in waits(result).items()} == case.waiting
    assert all(wait.code == case.code for wait in result.waiting)
    assert_quota_kept(snap, result)


def test_queue_usage_lists_quota_keys_and_actual_use() -> None:
    snap = Snapshot(
        (make_node("mixed", models=["T4", "V100M32"], accelerators={"fpga": 2}),),
        (queue("team-a", gpu_T4=1, gpu_any=1, cpu=8), queue("idle", memory=4)),
        (running("j", placed("mixed", cpu=2, memory=4, gpus=(1,), model="V100M32",
                             accelerators={"fpga": [0]}), queue="team-a"),
         running("s", placed("mixed", gpus=(0,), milli=250), queue="team-a")), ())
    assert queue_usage(snap) == {
        "team-a": {"gpu/T4": 250, "gpu/*": 1000, "cpu": 3000, "memory": 5 * GI, "gpu": 1250,
                   "acc/fpga": 1},
        "idle": {"memory": 0},
    }
