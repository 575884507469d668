"""Each policy's characteristic choice on small hand-made clusters (table-driven)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from aip.errors import InvalidSpec
from aip.scheduler.model import Node, ReplicaRequest
from aip.scheduler.placement import Choice, apply_choice
from aip.scheduler.policies import DEFAULT_POLICY, make_policy, policy_names
from aip.scheduler.resources import ClusterState, Holding
from aip.scheduler.workload import Workload

from ..builders import GI, make_node

HALF = ReplicaRequest(2000, 4 * GI, 500)


def share(milli: int, cpu: float = 2, memory: int = 4, *types: str) -> ReplicaRequest:
    return ReplicaRequest(round(cpu * 1000), memory * GI, milli, frozenset(types))


def whole(gpus: int, cpu: float = 8, memory: int = 32, *types: str) -> ReplicaRequest:
    return ReplicaRequest(round(cpu * 1000), memory * GI, gpus * 1000, frozenset(types))


def cpu_only(cpu: float, memory: int = 8) -> ReplicaRequest:
    return ReplicaRequest(round(cpu * 1000), memory * GI)


@dataclass
class Case:
    policy: str
    nodes: list[Node]
    request: ReplicaRequest
    expect: tuple[str, tuple[int, ...]]  # node, GPU slots
    used: list[tuple[str, float, Sequence[tuple[int, int]]]] = field(default_factory=list)
    workload: Workload | None = None  # None: the policy's built-in workload


def state_of(nodes: list[Node], used: list[tuple[str, float, Sequence[tuple[int, int]]]]
             ) -> ClusterState:
    """``used``: (node, cores taken, ((GPU slot, milli taken), ...))."""
    state = ClusterState(nodes)
    for name, cores, gpus in used:
        state.take(Holding(state.by_name[name].position, round(cores * 1000), GI, tuple(gpus)))
    return state


HALVES = Workload(((share(500), 0.9), (whole(1), 0.1)))

CASES = [
    pytest.param(Case(
        "gpu-packing", [make_node("idle", cpu=32, gpus=2), make_node("shared", cpu=32, gpus=2)],
        HALF, ("shared", (0,)), used=[("shared", 2, [(0, 500)])],
    ), id="gpu-packing puts a half share on the half-used GPU"),
    pytest.param(Case(
        "gpu-packing", [make_node("eight", cpu=64, gpus=8), make_node("two", cpu=64, gpus=2)],
        whole(1), ("two", (0,)),
    ), id="gpu-packing opens the idle node with the fewest GPUs"),
    pytest.param(Case(
        "best-fit", [make_node("roomy", cpu=64, gpus=8), make_node("snug", cpu=16, gpus=2)],
        whole(1, cpu=4), ("snug", (0,)),
    ), id="best-fit takes the node with the least CPU and GPU left"),
    pytest.param(Case(
        "gpu-clustering", [make_node("wholes", cpu=32, gpus=4), make_node("shares", cpu=32,
                                                                          gpus=4)],
        HALF, ("shares", (0,)), used=[("wholes", 8, [(0, 1000)]), ("shares", 2, [(0, 300)])],
    ), id="gpu-clustering keeps shares with shares"),
    pytest.param(Case(
        "dot-product", [make_node("big", cpu=96, gpus=8), make_node("small", cpu=16, gpus=2)],
        whole(1), ("small", (0,)),
    ), id="dot-product takes the smallest aligned free vector"),
    pytest.param(Case(
        "best-fit", [make_node("n", cpu=32, gpus=2)], HALF, ("n", (0,)),
        used=[("n", 2, [(0, 300), (1, 0)])],
    ), id="a share takes the tightest GPU that fits (best GPU selection)"),
    pytest.param(Case(
        "fgd", [make_node("n", cpu=32, gpus=2)], HALF, ("n", (1,)),
        used=[("n", 2, [(0, 300)])], workload=HALVES,
    ), id="fgd keeps a half GPU free instead of leaving a 0.2 sliver when halves dominate"),
    pytest.param(Case(
        "aip", [make_node("n", cpu=32, gpus=2)], HALF, ("n", (1,)),
        used=[("n", 2, [(0, 300)])], workload=HALVES,
    ), id="aip keeps a half GPU free as fgd does"),
    pytest.param(Case(
        "aip", [make_node("gpu-node", cpu=32, gpus=4), make_node("cpu-rich", cpu=96, gpus=1)],
        cpu_only(8), ("cpu-rich", ()),
        workload=Workload(((whole(1), 0.8), (cpu_only(8), 0.2))),
    ), id="aip puts CPU-only work where the GPUs do not need the cores"),
    pytest.param(Case(
        "aip", [make_node("t4", cpu=64, gpus=4, model="T4"),
                make_node("v100", cpu=64, gpus=4, model="V100M32")],
        whole(1), ("t4", (0,)),
        workload=Workload(((whole(1), 0.5), (whole(1, 8, 32, "V100M32"), 0.5))),
    ), id="aip leaves a model to the tasks that can only use it"),
    pytest.param(Case(
        "aip", [make_node("tight", cpu=2, gpus=2), make_node("roomy", cpu=32, gpus=8)],
        whole(1, cpu=2), ("tight", (0,)),
    ), id="aip spends the GPU that has no cores to feed it, not roomy's cores"),
]


@pytest.mark.parametrize("case", CASES)
def test_characteristic_choice(case: Case) -> None:
    state = state_of(case.nodes, case.used)
    choice = make_policy(case.policy, workload=case.workload).choose(state, case.request, None)
    assert choice is not None
    assert (choice.node.name, choice.gpu_slots) == case.expect


@pytest.mark.parametrize("name", policy_names())
def test_every_policy_respects_gpu_types(name: str) -> None:
    nodes = [make_node("t4", cpu=32, gpus=4, model="T4"),
             make_node("v100", cpu=32, gpus=4, model="V100M32")]
    policy = make_policy(name, seed=1)
    state = ClusterState(nodes)
    for request in (whole(1, 4, 8, "V100M32"), share(250, 1, 2, "V100M32")):
        choice = policy.choose(state, request, request.gpu_types)
        assert choice is not None and choice.node.name == "v100"
        assert choice.gpu_model == "V100M32"
    assert policy.choose(state, whole(1, 4, 8, "A10"), frozenset({"A10"})) is None


@pytest.mark.parametrize("name", policy_names())
def test_every_policy_says_none_when_nothing_fits(name: str) -> None:
    state = state_of([make_node("n", cpu=8, gpus=2)], [("n", 4, [(0, 1000)])])
    policy = make_policy(name)
    assert policy.choose(state, whole(2, 1), None) is None  # one whole GPU left
    assert policy.choose(state, cpu_only(5), None) is None  # 4 cores left
    assert policy.choose(state, whole(1, 1), None) is not None


def test_random_is_seeded() -> None:
    nodes = [make_node(f"n{i}", cpu=64, gpus=8) for i in range(12)]

    def picks(seed: int) -> list[str]:
        policy, state, out = make_policy("random", seed=seed), ClusterState(nodes), []
        for index in range(30):
            choice = policy.choose(state, HALF, None)
            assert choice is not None
            apply_choice(state, HALF, choice, "r", index)
            out.append(choice.node.name)
        return out

    assert picks(7) == picks(7)
    assert picks(7) != picks(8)


def test_registry_names_and_errors() -> None:
    assert DEFAULT_POLICY == "aip"
    assert {"random", "best-fit", "gpu-packing", "gpu-clustering", "dot-product", "fgd",
            "aip"} <= set(policy_names())
    with pytest.raises(InvalidSpec, match="unknown placement policy"):
        make_policy("worst-fit")


def test_choice_is_pure_and_index_follows_the_state() -> None:
    """choose never changes the state; after the state changes, the next choice sees it."""
    state = ClusterState([make_node("a", cpu=16, gpus=1), make_node("b", cpu=16, gpus=1)])
    for name in policy_names():
        policy = make_policy(name)
        first = policy.choose(state, whole(1, 1), None)
        assert first is not None
        assert [node.gpu_free for node in state.nodes] == [[1000], [1000]]
    apply_choice(state, whole(1, 1), Choice(state.nodes[0], "T4", (0,), 1000), "x", 0)
    for name in policy_names():
        choice = make_policy(name).choose(state, whole(1, 1), None)
        assert choice is not None and choice.node.name == "b"
