"""Placement: where replicas land (best fit, shares, models, accelerators, gangs)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from aip.scheduler import (
    Allocation,
    BestFitPolicy,
    ClusterState,
    Node,
    PendingJob,
    ReplicaRequest,
    ScoredPolicy,
    WaitReason,
    schedule,
)
from aip.scheduler.placement import Choice, PlacementPolicy, Score

from .builders import admitted, make_job, make_node, placed, running, snapshot, waits, where
from .invariants import after_admits, assert_gangs_whole, assert_not_overallocated


@dataclass
class Case:
    nodes: list[Node]
    pending: list[PendingJob]
    running: list[Allocation] = field(default_factory=list)
    expect: dict[str, list[tuple[str, tuple[int, ...]]]] = field(default_factory=dict)
    waiting: dict[str, WaitReason] = field(default_factory=dict)
    policy: PlacementPolicy | None = None  # None: the platform default



CASES = [
    pytest.param(Case(
        nodes=[make_node("roomy", gpus=4), make_node("busy", gpus=4)],
        running=[running("old", placed("busy", gpus=(0, 1, 2)))],
        pending=[make_job("train").gpu(1).build()],
        expect={"train": [("busy", (3,))]},
    ), id="a whole GPU goes where it leaves the fewest GPUs free"),
    pytest.param(Case(
        nodes=[make_node("n1", gpus=2)],
        pending=[make_job("a").gpu(0.5).build(), make_job("b").gpu(0.5).build()],
        expect={"a": [("n1", (0,))], "b": [("n1", (0,))]},
    ), id="two half-GPU shares are packed on one GPU"),
    pytest.param(Case(
        nodes=[make_node("n1", gpus=3)],
        running=[running("r1", placed("n1", gpus=(0,), milli=750)),
                 running("r2", placed("n1", gpus=(1,), milli=500))],
        pending=[make_job("half").gpu(0.5).build(), make_job("quarter").gpu(0.25).build()],
        expect={"half": [("n1", (1,))], "quarter": [("n1", (0,))]},
    ), id="a share takes the GPU whose remaining share is smallest but fits"),
    pytest.param(Case(
        nodes=[make_node("n1", gpus=2)],
        running=[running("whole", placed("n1", gpus=(0,)))],
        pending=[make_job("share").gpu(0.25).build()],
        expect={"share": [("n1", (1,))]},
    ), id="a share never lands on a GPU held whole"),
    pytest.param(Case(
        nodes=[make_node("n1", gpus=2)],
        running=[running("s", placed("n1", gpus=(0,), milli=250))],
        pending=[make_job("two").gpu(2).build(), make_job("one").gpu(1).build()],
        expect={"one": [("n1", (1,))]},
        waiting={"two": WaitReason.INSUFFICIENT_RESOURCES},
    ), id="whole GPUs take only fully free GPUs"),
    pytest.param(Case(
        nodes=[make_node("t4", gpus=4, model="T4"), make_node("v100", gpus=4, model="V100M32")],
        pending=[make_job("needs-v100").gpu(1, "V100M32").build(),
                 make_job("either").gpu(4, "V100M16", "T4").build()],
        expect={"needs-v100": [("v100", (0,))], "either": [("t4", (0, 1, 2, 3))]},
    ), id="gpu_type restricts the GPU model"),
    pytest.param(Case(
        nodes=[make_node("mixed", models=["T4", "V100M32", "V100M32"])],
        pending=[make_job("pair").gpu(2).build()],
        expect={"pair": [("mixed", (1, 2))]},
    ), id="the GPUs of one replica are all of one model"),
    pytest.param(Case(
        nodes=[make_node("t4", gpus=2, model="T4")],
        pending=[make_job("v100-only").gpu(1, "V100M32").build()],
        waiting={"v100-only": WaitReason.NO_MATCHING_GPU_TYPE},
    ), id="a job for a model no node has waits with NoMatchingGpuType"),
    pytest.param(Case(
        nodes=[make_node("fpga", accelerators={"fpga": 2})],
        running=[running("old", placed("fpga", accelerators={"fpga": [0]}))],
        pending=[make_job("new").acc("fpga", 1).build(), make_job("more").acc("fpga", 1).build()],
        expect={"new": [("fpga", ())]},
        waiting={"more": WaitReason.INSUFFICIENT_RESOURCES},
    ), id="accelerators get the free device ids"),
    pytest.param(Case(
        nodes=[make_node("n1", gpus=4), make_node("n2", gpus=4)],
        pending=[make_job("gang").replicas(worker=2).gpu(4).build()],
        expect={"gang": [("n1", (0, 1, 2, 3)), ("n2", (0, 1, 2, 3))]},
    ), id="a gang spans nodes when no single node holds it"),
    pytest.param(Case(
        nodes=[make_node("n1", gpus=4), make_node("n2", gpus=2)],
        pending=[make_job("gang").replicas(worker=2).gpu(4).build(),
                 make_job("small").gpu(1).build()],
        expect={"small": [("n2", (0,))]},
        waiting={"gang": WaitReason.INSUFFICIENT_RESOURCES},
    ), id="a gang is placed whole or not at all, and does not block smaller jobs"),
    pytest.param(Case(
        nodes=[make_node("gpu", cpu=32, gpus=4), make_node("cpu", cpu=32)],
        pending=[make_job("etl").cpu(4).build()],
        expect={"etl": [("cpu", ())]},
    ), id="CPU-only work keeps off nodes with free GPUs"),
    pytest.param(Case(
        nodes=[make_node("tight", cpu=2, gpus=2), make_node("roomy", cpu=32, gpus=8)],
        pending=[make_job("train").gpu(1).cpu(2).build()],
        expect={"train": [("roomy", (0,))]},
        # best-fit's stranding rule; the default ("aip") weighs roomy's cores, which its 8
        # GPUs need, against tight's nearly unusable GPUs and takes tight (policies tests)
        policy=BestFitPolicy(),
    ), id="best-fit avoids leaving a node's free GPUs without CPU"),
    pytest.param(Case(
        nodes=[make_node("cordoned", gpus=4, schedulable=False), make_node("open", gpus=1)],
        pending=[make_job("a").gpu(1).build(), make_job("b").gpu(1).build()],
        expect={"a": [("open", (0,))]},
        waiting={"b": WaitReason.INSUFFICIENT_RESOURCES},
    ), id="unschedulable nodes get nothing new"),
    pytest.param(Case(
        nodes=[make_node("n1", cpu=8)],
        running=[running("old", placed("n1", cpu=6))],
        pending=[make_job("big").cpu(4).build(), make_job("fits").cpu(2).build()],
        expect={"fits": [("n1", ())]},
        waiting={"big": WaitReason.INSUFFICIENT_RESOURCES},
    ), id="running allocations hold their cpu"),
    pytest.param(Case(
        nodes=[make_node("n1", cpu=16, gpus=2)],
        pending=[make_job("job").replicas(worker=2).gpu(1).role("ps", 1, cpu=2).build()],
        expect={"job": [("n1", (0,)), ("n1", (1,)), ("n1", ())]},
    ), id="placements come back in role and index order"),
]


@pytest.mark.parametrize("case", CASES)
def test_placement(case: Case) -> None:
    snap = snapshot(case.nodes, case.pending, case.running)
    result = schedule(snap, case.policy)
    assert {job: where(result, job) for job in admitted(result)} == case.expect
    assert {job: wait.code for job, wait in waits(result).items()} == case.waiting
    assert_not_overallocated(snap, after_admits(snap, result))
    assert_gangs_whole(snap, result)


def test_placements_carry_role_index_model_and_devices() -> None:
    snap = snapshot([make_node("n1", cpu=16, gpus=2, model="A10", accelerators={"npu": 4})],
                    [make_job("j").replicas(worker=2).gpu(1).cpu(3).memory(5).acc("npu", 2)
                     .build()])
    worker0, worker1 = schedule(snap).admitted[0].placements
    assert (worker0.role, worker0.index, worker1.index) == ("worker", 0, 1)
    assert (worker0.gpu_model, worker0.gpu_milli_each, worker0.cpu_milli) == ("A10", 1000, 3000)
    assert worker0.memory_bytes == 5 * 2**30
    assert sorted(worker0.accelerators["npu"] + worker1.accelerators["npu"]) == [0, 1, 2, 3]


def test_accelerators_get_free_device_ids() -> None:
    snap = snapshot([make_node("f", accelerators={"fpga": 4})],
                    [make_job("new").acc("fpga", 2).build()],
                    [running("old", placed("f", accelerators={"fpga": [0, 2]}))])
    assert admitted(schedule(snap))["new"][0].accelerators == {"fpga": (1, 3)}


class Spread(ScoredPolicy):
    """Worst fit: the node with the most free GPUs. Shows that a score is all a policy needs."""

    name = "spread"

    def score(self, state: ClusterState, request: ReplicaRequest, choice: Choice) -> Score:
        return (-choice.node.gpu_free_total, choice.node.position)


def test_a_scored_policy_plugs_in() -> None:
    snap = snapshot([make_node("n1", gpus=4), make_node("n2", gpus=4)],
                    [make_job("a").gpu(1).build(), make_job("b").gpu(1).build()])
    assert {where(schedule(snap), "a")[0][0], where(schedule(snap), "b")[0][0]} == {"n1"}
    spread = schedule(snap, Spread())
    assert {where(spread, "a")[0][0], where(spread, "b")[0][0]} == {"n1", "n2"}
