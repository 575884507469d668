"""Reasons in plain words: why a job waits for capacity, and why it can never run."""

from __future__ import annotations

import pytest

from aip.scheduler import Allocation, Node, PendingJob, WaitReason, infeasible_reason, schedule
from aip.scheduler.reasons import cpus, gpus, memory

from .builders import GI, make_job, make_node, placed, running, snapshot, waits

INSUFFICIENT = WaitReason.INSUFFICIENT_RESOURCES

WAIT_CASES = [
    pytest.param(
        [make_node("v", gpus=2, model="V100M32")],
        [running("old", placed("v", gpus=(0, 1), model="V100M32"))],
        make_job("j").gpu(1, "V100M32").build(),
        INSUFFICIENT, "no node has a free V100M32 GPU",
        id="every GPU of the model is busy"),
    pytest.param(
        [make_node("n1", gpus=4), make_node("n2", gpus=4)],
        [running("a", placed("n1", gpus=(0, 1))), running("b", placed("n2", gpus=(2, 3)))],
        make_job("j").gpu(4).build(),
        INSUFFICIENT, "needs 4 free GPUs on one node; most free is 2",
        id="whole GPUs must be free on one node"),
    pytest.param(
        [make_node("n1", gpus=4), make_node("n2", gpus=4)],
        [running("a", placed("n1", gpus=(0, 1))), running("b", placed("n2", gpus=(2, 3)))],
        make_job("j").replicas(worker=2).gpu(4).build(),
        INSUFFICIENT, "needs 4 free GPUs on one node for each of its 2 worker replicas; most free "
                      "is 2",
        id="the role is named when it has several replicas"),
    pytest.param(
        [make_node(f"n{i}", gpus=2) for i in range(3)], [],
        make_job("j").replicas(worker=4).gpu(2).build(),
        INSUFFICIENT, "the gang of 4 replicas does not fit at once: after placing 3, no room is "
                      "left for worker 3 (2 gpu, 1 cpu, 1Gi)",
        id="each replica fits alone but the gang does not"),
    pytest.param(
        [make_node("n1", cpu=8, gpus=2)], [running("a", placed("n1", cpu=6))],
        make_job("j").gpu(1).cpu(4).build(),
        INSUFFICIENT, "insufficient free cpu: needs 4 cpu on one node with 1 free GPU; most free "
                      "is 2",
        id="cpu is short where the GPUs are"),
    pytest.param(
        [make_node("n1", gpus=2, model="A10")],
        [running("a", placed("n1", gpus=(0,), milli=500, model="A10")),
         running("b", placed("n1", gpus=(1,), milli=500, model="A10"))],
        make_job("j").gpu(0.75).build(),
        INSUFFICIENT, "needs 0.75 of one free GPU; the most free on one GPU is 0.5",
        id="a share needs room on a single GPU"),
    pytest.param(
        [make_node("n1", memory=24)], [running("a", placed("n1", memory=16))],
        make_job("j").memory(16).build(),
        INSUFFICIENT, "insufficient free memory: needs 16Gi on one node; most free is 8Gi",
        id="memory in Gi"),
    pytest.param(
        [make_node("n1", memory=16)], [running("a", placed("n1", memory=16))],
        make_job("j").memory(1).build(),
        INSUFFICIENT, "insufficient free memory: needs 1Gi on one node; no such node has any free",
        id="nothing free at all"),
    pytest.param(
        [make_node("f", accelerators={"fpga": 2})],
        [running("a", placed("f", accelerators={"fpga": [1]}))],
        make_job("j").acc("fpga", 2).build(),
        INSUFFICIENT, "insufficient free fpga: needs 2 on one node; most free is 1",
        id="accelerators by kind"),
    pytest.param(
        [make_node("t4", gpus=1)], [],
        make_job("j").gpu(1, "V100M32", "A100").build(),
        WaitReason.NO_MATCHING_GPU_TYPE, "no node has a A100 or V100M32 GPU",
        id="no node has the model"),
]


@pytest.mark.parametrize(("nodes", "held", "job", "code", "reason"), WAIT_CASES)
def test_wait_reason(nodes: list[Node], held: list[Allocation], job: PendingJob,
                     code: WaitReason, reason: str) -> None:
    wait = waits(schedule(snapshot(nodes, [job], held)))[job.job_id]
    assert (wait.code, wait.reason) == (code, reason)


CLUSTER = [make_node("t4", cpu=16, gpus=4, model="T4"),
           make_node("v100", cpu=16, gpus=4, model="V100M32", accelerators={"fpga": 1}),
           make_node("cordoned", cpu=96, gpus=8, model="A100", schedulable=False)]

INFEASIBLE_CASES = [
    pytest.param(make_job("j").replicas(worker=2).gpu(4).build(), None,
                 id="a job the empty cluster can hold is feasible"),
    pytest.param(make_job("j").gpu(1, "V100M16").build(), "no node has a V100M16 GPU",
                 id="a GPU model no node has"),
    pytest.param(make_job("j").gpu(1, "A100").build(), "no node has a A100 GPU",
                 id="cordoned nodes do not count"),
    pytest.param(make_job("j").gpu(8).build(), "needs 8 GPUs on one node; the largest node has 4",
                 id="more GPUs than any node has"),
    pytest.param(make_job("j").replicas(worker=3).gpu(8).build(),
                 "needs 8 GPUs on one node for each of its 3 worker replicas; the largest node "
                 "has 4",
                 id="more GPUs per replica than any node has"),
    pytest.param(make_job("j").acc("tpu", 1).build(), "no node has accelerator 'tpu'",
                 id="an accelerator kind no node has"),
    pytest.param(make_job("j").cpu(64).build(),
                 "insufficient cpu: needs 64 cpu on one node; the largest node has 16",
                 id="more cpu than any node has"),
    pytest.param(make_job("j").gpu(1, "T4").acc("fpga", 1).build(),
                 "insufficient fpga: needs 1 on one node with 1 T4 GPU; no such node has any",
                 id="resources that exist, but never on one node"),
    pytest.param(make_job("j").replicas(worker=3).gpu(4).build(),
                 "needs 3 worker replicas (4 gpu, 1 cpu, 1Gi) at once; the whole cluster holds "
                 "at most 2",
                 id="a gang bigger than the whole cluster"),
    pytest.param(make_job("j").replicas(worker=8).gpu(0.5).cpu(4).build(), None,
                 id="shares pack: eight half GPUs fit"),
]


@pytest.mark.parametrize(("job", "reason"), INFEASIBLE_CASES)
def test_infeasible_reason(job: PendingJob, reason: str | None) -> None:
    assert infeasible_reason(CLUSTER, job) == reason


def test_infeasible_reason_on_an_empty_inventory() -> None:
    assert infeasible_reason([], make_job("j").build()) == "no schedulable node in the cluster"


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param(gpus(4000), "4", id="whole GPUs"),
    pytest.param(gpus(250), "0.25", id="a GPU share"),
    pytest.param(cpus(1500), "1.5", id="cpu cores"),
    pytest.param(memory(16 * GI), "16Gi", id="memory Gi"),
    pytest.param(memory(3 * GI // 2), "1.5Gi", id="memory fractions"),
    pytest.param(memory(512 * 2**20), "512Mi", id="memory Mi"),
    pytest.param(memory(4 * 2**40), "4Ti", id="memory Ti"),
])
def test_human_units(text: str, expected: str) -> None:
    assert text == expected
