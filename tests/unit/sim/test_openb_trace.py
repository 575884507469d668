"""The simulator on the real openb trace (skipped where ../shared/data/openb is absent)."""

from __future__ import annotations

import pytest

from aip.scheduler.policies import DEFAULT_POLICY
from aip.sim.openb import evenly_spaced, gpu_capacity_milli, load_nodes, load_tasks
from aip.sim.runs import fill_runs, replay_runs
from aip.sim.variants import VARIANT_KINDS, make_variant
from tests.unit.sim.builders import OPENB_NODES, OPENB_PODS

pytestmark = pytest.mark.skipif(not OPENB_PODS.is_file() or not OPENB_NODES.is_file(),
                                reason=f"openb trace not found under {OPENB_PODS.parent}")


def test_the_trace_loads_as_published() -> None:
    nodes, tasks = load_nodes(OPENB_NODES), load_tasks(OPENB_PODS)
    assert (len(nodes), gpu_capacity_milli(nodes), len(tasks)) == (1213, 6_212_000, 8152)


def test_one_fill_run_of_the_default_policy_on_the_full_trace() -> None:
    nodes, tasks = load_nodes(OPENB_NODES), load_tasks(OPENB_PODS)
    [result] = fill_runs(nodes, tasks, [DEFAULT_POLICY], seed=42)
    assert 10_000 < result.tasks < 11_500  # about 10,600 arrivals for 130% of 6,212 GPUs
    assert result.arrived_pct[-1] >= 130
    assert 0 < result.unallocated_at_100 < 20
    assert result.scheduled + result.failed == result.tasks


def test_variants_of_the_trace_run() -> None:
    nodes, tasks = load_nodes(OPENB_NODES), load_tasks(OPENB_PODS)
    small = evenly_spaced(nodes, 0.05)
    for kind in VARIANT_KINDS:
        [result] = fill_runs(small, make_variant(tasks, kind, seed=1), [DEFAULT_POLICY])
        assert 0 <= result.unallocated_at_100 <= 100


def test_replay_on_a_twentieth_of_the_cluster_makes_tasks_wait() -> None:
    nodes, tasks = load_nodes(OPENB_NODES), load_tasks(OPENB_PODS)
    [result] = replay_runs(evenly_spaced(nodes, 0.05), tasks, [DEFAULT_POLICY], speedup=30)
    assert result.waited > 0
    assert result.scheduled + result.never_scheduled + result.skipped == len(tasks)
    assert result.delay_p95 <= result.delay_max
    assert result.utilization_peak <= 100
