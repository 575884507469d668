"""Fill mode on clusters small enough to check by hand, and the sampling behind it."""

from __future__ import annotations

import pytest

from aip.errors import InvalidSpec
from aip.scheduler.policies import DEFAULT_POLICY, make_policy, policy_names
from aip.sim.fill import mean_curve, run_fill, sample_tasks
from aip.sim.runs import fill_runs, policy_list
from tests.unit.sim.builders import node, task

HALF = task("half", gpu=500, cpu=1)


def test_half_gpu_tasks_fill_two_single_gpu_nodes_exactly() -> None:
    """2 nodes x 1 GPU, tasks of 0.5 GPU: capacity 2,000 milli, target 2,600 -> 6 tasks; the
    first four fit, the last two find every GPU full."""
    result = run_fill([node("n0"), node("n1")], [HALF], make_policy(DEFAULT_POLICY), seed=1)
    assert result.capacity_milli == 2000
    assert result.tasks == 6
    assert result.arrived_pct == [25.0, 50.0, 75.0, 100.0, 125.0, 150.0]
    assert result.allocated_pct == [25.0, 50.0, 75.0, 100.0, 100.0, 100.0]
    assert (result.scheduled, result.failed) == (4, 2)
    assert result.unallocated_at_100 == 0.0
    assert result.unallocated_at_end == 0.0


@pytest.mark.parametrize("policy", policy_names())
def test_cpu_stranding_leaves_half_of_each_gpu_for_every_policy(policy: str) -> None:
    """Each node has 4 cores and each 0.5-GPU task takes 3: one task per node, so half of the
    GPU capacity stays unallocated whatever the policy."""
    tasks = [task("hungry", gpu=500, cpu=3)]
    nodes = [node("n0", cpu=4), node("n1", cpu=4)]
    result = run_fill(nodes, tasks, make_policy(policy, seed=3), seed=7, label=policy)
    assert result.policy == policy
    assert result.arrived_pct == [25.0, 50.0, 75.0, 100.0, 125.0, 150.0]
    assert result.allocated_pct == [25.0, 50.0, 50.0, 50.0, 50.0, 50.0]
    assert result.unallocated_at_100 == 50.0
    assert result.unallocated_at_end == 50.0


def test_cpu_only_tasks_arrive_without_moving_the_gpu_curve() -> None:
    tasks = [task("gpu", gpu=1000, cpu=1), task("cpu", cpu=1)]
    result = run_fill([node("n0", gpus=2, cpu=16)], tasks, make_policy(DEFAULT_POLICY), seed=5)
    assert result.arrived_pct[-1] >= 130
    assert result.allocated_pct[-1] == 100.0
    assert result.tasks > 3  # CPU-only draws add tasks but no GPU request


def test_to_dict_names_the_end_after_the_inflation() -> None:
    result = run_fill([node("n0"), node("n1")], [HALF], make_policy(DEFAULT_POLICY), seed=1,
                      inflation=1.5)
    data = result.to_dict()
    assert data["unallocated_at_100"] == 0.0
    assert data["unallocated_at_150"] == 0.0
    assert "unallocated_at_130" not in data
    assert isinstance(data["seconds"], float)
    assert data["curve"] == {"arrived_pct": result.arrived_pct,
                             "allocated_pct": result.allocated_pct}


def test_sampling_is_reproducible_by_seed_and_stops_at_the_target() -> None:
    tasks = [task(f"t{milli}", gpu=milli) for milli in (100, 250, 500, 1000, 2000, 8000)]
    tasks.append(task("cpu", cpu=2))
    capacity, inflation = 40_000, 1.3
    first = sample_tasks(tasks, capacity, inflation, seed=42)
    assert first == sample_tasks(tasks, capacity, inflation, seed=42)
    assert first != sample_tasks(tasks, capacity, inflation, seed=43)
    total = sum(t.gpu_milli for t in first)
    assert total >= inflation * capacity
    assert total - max(t.gpu_milli for t in first) < inflation * capacity  # one draw too many


def test_a_trace_without_gpu_tasks_or_a_cluster_without_gpus_is_refused() -> None:
    with pytest.raises(InvalidSpec, match="no GPU task"):
        sample_tasks([task("cpu")], 1000, 1.3, seed=1)
    with pytest.raises(InvalidSpec, match="no GPU"):
        run_fill([node("cpu-only", gpus=0)], [HALF], make_policy(DEFAULT_POLICY))


def test_mean_curve_averages_runs_on_an_arrived_grid() -> None:
    policy = make_policy(DEFAULT_POLICY)
    fits = run_fill([node("n0"), node("n1")], [HALF], policy, seed=1)
    strands = run_fill([node("n0", cpu=4), node("n1", cpu=4)], [task("h", gpu=500, cpu=3)],
                       policy, seed=1)
    assert fits.allocated_at(0) == 0.0
    assert fits.allocated_at(60) == 50.0
    grid, mean = mean_curve([fits, strands], step=25)
    assert grid == [0, 25, 50, 75, 100, 125, 150]
    assert mean == [0.0, 25.0, 50.0, 62.5, 75.0, 75.0, 75.0]


def test_fill_runs_go_through_the_registry_by_name() -> None:
    assert policy_list(None) == [DEFAULT_POLICY]
    assert policy_list("all") == policy_names()
    with pytest.raises(InvalidSpec, match="unknown placement policy"):
        policy_list("no-such-policy")
    results = fill_runs([node("n0"), node("n1")], [HALF], policy_names(), seed=1)
    assert [r.policy for r in results] == policy_names()
    assert all(r.unallocated_at_100 == 0.0 for r in results)
