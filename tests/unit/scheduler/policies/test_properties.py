"""Invariants of every registered policy on random small clusters (hypothesis).

1. no policy over-allocates: a share only on a GPU with that much free, whole GPUs only fully
   free and of one allowed model, CPU, memory and accelerators within the node's free values;
2. a policy finds a place whenever one exists (``placement.candidates``), else says None;
3. the numpy indexes refreshed change by change equal ones built afresh, and their
   fragmentation change equals the definition computed by hand.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aip.scheduler.model import Node, ReplicaPlacement, ReplicaRequest
from aip.scheduler.placement import Choice, apply_choice, candidates
from aip.scheduler.policies import make_policy, policy_names
from aip.scheduler.policies.capacity import CapacityClasses, CapacityIndex
from aip.scheduler.policies.fragmentation import FragIndex, TaskClasses
from aip.scheduler.policies.table import NodeTable
from aip.scheduler.resources import FULL, ClusterState, NodeState
from aip.scheduler.workload import Workload

from ..builders import GI, make_node

MODELS = ("T4", "V100M32", "A10")
PROPERTY = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def clusters(draw: st.DrawFn) -> list[Node]:
    out = []
    for i in range(draw(st.integers(1, 5))):
        gpus = draw(st.sampled_from((0, 1, 2, 4, 8)))
        models = draw(st.lists(st.sampled_from(MODELS), min_size=gpus, max_size=gpus)) \
            if draw(st.integers(0, 3)) == 0 else [draw(st.sampled_from(MODELS))] * gpus
        out.append(make_node(f"n{i}", cpu=draw(st.sampled_from((2, 4, 8, 16, 32))),
                             memory=draw(st.sampled_from((4, 16, 64))), models=models,
                             accelerators={"fpga": draw(st.integers(0, 1))},
                             schedulable=draw(st.integers(0, 9)) > 0))
    return out


@st.composite
def requests(draw: st.DrawFn) -> ReplicaRequest:
    gpu = draw(st.sampled_from((0, 0, 100, 250, 470, 500, 810, 1000, 1000, 2000, 4000)))
    types = draw(st.sets(st.sampled_from(MODELS), max_size=2)) if gpu and draw(
        st.booleans()) else set()
    fpga = (("fpga", 1),) if draw(st.integers(0, 5)) == 0 else ()
    return ReplicaRequest(draw(st.sampled_from((500, 1000, 2000, 4000, 8000))),
                          draw(st.sampled_from((1, 2, 8))) * GI, gpu, frozenset(types), fpga)


def valid(choice: Choice, request: ReplicaRequest, models: frozenset[str] | None) -> bool:
    node = choice.node
    if not node.fits_host(request):
        return False
    if request.gpu_milli == 0:
        return choice.gpu_slots == () and choice.gpu_milli_each == 0
    if models is not None and choice.gpu_model not in models:
        return False
    if any(node.gpu_model[slot] != choice.gpu_model for slot in choice.gpu_slots):
        return False
    if request.whole_gpus:
        return (len(set(choice.gpu_slots)) == request.whole_gpus
                and choice.gpu_milli_each == FULL
                and all(node.gpu_free[slot] == FULL for slot in choice.gpu_slots))
    return (len(choice.gpu_slots) == 1 and choice.gpu_milli_each == request.gpu_milli
            and node.gpu_free[choice.gpu_slots[0]] >= request.gpu_milli)


def assert_within_capacity(state: ClusterState) -> None:
    for node in state.nodes:
        assert node.cpu_free >= 0 and node.memory_free >= 0
        assert all(0 <= free <= FULL for free in node.gpu_free)
        assert all(0 <= held <= 1 for held in node.acc_holders.get("fpga", []))


@PROPERTY
@given(nodes=clusters(), steps=st.lists(st.tuples(requests(), st.integers(0, 9)),
                                        min_size=1, max_size=25),
       seed=st.integers(0, 3))
def test_no_policy_over_allocates_and_each_finds_a_place_when_one_exists(
        nodes: list[Node], steps: list[tuple[ReplicaRequest, int]], seed: int) -> None:
    workload = Workload.from_requests(request for request, _ in steps)
    for name in policy_names():
        policy = make_policy(name, seed=seed, workload=workload)
        state = ClusterState(nodes)
        placed: list[tuple[ReplicaRequest, Choice]] = []
        for index, (request, action) in enumerate(steps):
            if action == 0 and placed:  # give something back: the indexes must follow
                old_request, old = placed.pop(0)
                state.release(_placement(state, old_request, old))
                continue
            if action == 1:  # a what-if copy starts its own indexes
                state = state.copy()
            models = request.gpu_types or None
            choice = policy.choose(state, request, models)
            exists = next(iter(candidates(state, request, models)), None) is not None
            assert (choice is not None) == exists, (name, request)
            if choice is None:
                continue
            assert valid(choice, request, models), (name, request, choice)
            apply_choice(state, request, choice, "r", index)
            placed.append((request, choice))
            assert_within_capacity(state)


def _placement(state: ClusterState, request: ReplicaRequest, choice: Choice
               ) -> ReplicaPlacement:
    node = state.nodes[choice.node.position]
    return ReplicaPlacement("r", 0, node.name, request.cpu_milli, request.memory_bytes,
                            tuple(node.gpu_index[slot] for slot in choice.gpu_slots),
                            choice.gpu_milli_each, choice.gpu_model)


@PROPERTY
@given(nodes=clusters(), steps=st.lists(requests(), min_size=1, max_size=20),
       workload=st.lists(requests(), min_size=1, max_size=8))
def test_indexes_follow_the_state_and_match_the_definitions(
        nodes: list[Node], steps: list[ReplicaRequest], workload: list[ReplicaRequest]) -> None:
    target = Workload.from_requests(workload)
    frag_classes, capacity_classes = TaskClasses(target), CapacityClasses(target)
    state = ClusterState(nodes)
    policy = make_policy("aip", workload=target)  # keeps indexes on the state as it changes
    for index, request in enumerate(steps):
        choice = policy.choose(state, request, request.gpu_types or None)
        table = NodeTable.of(state)
        frag = FragIndex.of(state, table, frag_classes)
        capacity = CapacityIndex.of(state, table, capacity_classes)
        found = table.candidates(state, request, request.gpu_types or None)
        if len(found.rows):
            expect_frag, expect_capacity = [], []
            for row, level in zip(found.rows, found.levels, strict=True):
                node = state.nodes[int(table.node[row])]
                model_id = int(table.model[row])
                model = table.model_names[model_id] if model_id >= 0 else None
                after = _after(node, request, int(level), model)
                expect_frag.append(fgd_by_hand(after, target) - fgd_by_hand(node, target))
                expect_capacity.append(capacity_by_hand(after, target)
                                       - capacity_by_hand(node, target))
            np.testing.assert_allclose(frag.delta(found, request), expect_frag, atol=1e-6)
            np.testing.assert_allclose(capacity.delta(found, request), expect_capacity,
                                       atol=0.05)
        if choice is not None:
            apply_choice(state, request, choice, "r", index)
    table = NodeTable.of(state)
    fresh = NodeTable(state)
    for name in ("cpu", "memory", "levels", "whole", "free", "node_free", "holders"):
        np.testing.assert_array_equal(getattr(table, name), getattr(fresh, name))
    np.testing.assert_allclose(FragIndex.of(state, table, frag_classes).frag,
                               FragIndex(fresh, frag_classes).frag)
    np.testing.assert_allclose(CapacityIndex.of(state, table, capacity_classes).frag,
                               CapacityIndex(fresh, capacity_classes).frag, atol=0.05)


def _after(node: NodeState, request: ReplicaRequest, level: int, model: str | None
           ) -> NodeState:
    """A copy of ``node`` after ``request`` took the GPU(s) a candidate at ``level`` names."""
    after = node.copy()
    after.cpu_free -= request.cpu_milli
    after.memory_free -= request.memory_bytes
    if request.gpu_shared:
        slot = next(slot for slot, free in enumerate(node.gpu_free)
                    if free == level and node.gpu_model[slot] == model)
        after.gpu_free[slot] -= request.gpu_milli
    elif request.gpu_milli and model is not None:
        for slot in node.free_whole_slots(model, request.whole_gpus):
            after.gpu_free[slot] = 0
    return after


def _pools(node: NodeState) -> dict[str, list[int]]:
    pools: dict[str, list[int]] = {}
    for slot, model in enumerate(node.gpu_model):
        pools.setdefault(model, []).append(max(0, node.gpu_free[slot]))
    return pools


def fgd_by_hand(node: NodeState, workload: Workload) -> float:
    """The paper's F_n(M), per GPU model of the node: free milli the class cannot use."""
    total = 0.0
    for model, gpus in _pools(node).items():
        free = sum(gpus)
        for request, share in workload.shapes:
            per_gpu = FULL if request.whole_gpus else request.gpu_milli
            fits = (request.gpu_milli > 0
                    and node.cpu_free >= request.cpu_milli
                    and node.memory_free >= request.memory_bytes
                    and (not request.gpu_types or model in request.gpu_types)
                    and sum(g >= per_gpu for g in gpus) >= max(1, request.whole_gpus))
            total += share * (sum(g for g in gpus if g < per_gpu) if fits else free)
    return total


def capacity_by_hand(node: NodeState, workload: Workload) -> float:
    """Free milli minus what each class could use, counting its tasks by GPU, CPU, memory."""
    total = 0.0
    for model, gpus in _pools(node).items():
        total += sum(gpus) * sum(share for _, share in workload.shapes)
        for request, share in workload.shapes:
            if not request.gpu_milli or (request.gpu_types and model not in request.gpu_types):
                continue
            if request.whole_gpus:
                slots = sum(g == FULL for g in gpus) // request.whole_gpus
            else:
                slots = sum(g // request.gpu_milli for g in gpus)
            tasks = min(slots, max(0, node.cpu_free) / max(1, request.cpu_milli),
                        max(0, node.memory_free) / max(1, request.memory_bytes))
            total -= share * tasks * request.gpu_milli
    return total


def test_workload_typical_keeps_the_frequent_shapes() -> None:
    a, b, c = (ReplicaRequest(1000, GI, 1000), ReplicaRequest(1000, 2 * GI, 1000),
               ReplicaRequest(2000, GI, 500))
    workload = Workload.from_requests([a] * 6 + [b] * 3 + [c])
    assert workload.typical(0.6).shapes == ((a, 1.0),)
    merged = workload.typical(0.9, memory=False)
    assert merged.shapes == ((dataclasses.replace(a, memory_bytes=0), 1.0),)
    assert [share for _, share in workload.typical(1.0, limit=2).shapes] == pytest.approx(
        [2 / 3, 1 / 3])
    assert abs(sum(share for _, share in Workload.default().shapes) - 1) < 1e-9

