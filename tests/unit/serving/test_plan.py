"""The replica planner: shares by weight, canaries, scale in by draining, and rolling updates
that never lower the serving capacity."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from aip.serving.plan import Plan, ReplicaView, VersionPlan, plan_replicas, share

V3, V4 = VersionPlan("3"), VersionPlan("4")


def ready(id: str, version: str, outstanding: int = 0) -> ReplicaView:
    return ReplicaView(id, version, "ready", outstanding)


def test_weights_share_the_replicas_each_version_at_least_one() -> None:
    canary = [VersionPlan("3", 90), VersionPlan("4", 10), VersionPlan("5", shadow=True)]
    assert share(canary, 10) == {"3": 9, "4": 1, "5": 1}
    assert share(canary, 1) == {"3": 1, "4": 1, "5": 1}
    assert share(canary, 0) == {"3": 0, "4": 0, "5": 0}


def test_missing_replicas_are_started() -> None:
    plan = plan_replicas([V3], 3, [ready("a", "3")])
    assert plan == Plan(wanted={"3": 3}, start=["3", "3"])


def test_scale_in_stops_starting_replicas_first_then_drains_the_least_busy() -> None:
    replicas = [ready("a", "3", 5), ready("b", "3", 0), ReplicaView("c", "3", "starting")]
    plan = plan_replicas([V3], 1, replicas)
    assert plan.stop == ["c"] and plan.drain == ["b"]


def test_drained_idle_replicas_stop_busy_ones_wait() -> None:
    replicas = [ReplicaView("a", "3", "draining", 2), ReplicaView("b", "3", "draining", 0),
                ready("c", "3")]
    plan = plan_replicas([V3], 1, replicas)
    assert plan.stop == ["b"] and plan.drain == [] and plan.start == []


def test_a_rolling_update_drains_one_old_replica_per_new_ready_one() -> None:
    old = [ready("o1", "3"), ready("o2", "3")]
    first = plan_replicas([V4], 2, old)
    assert first.start == ["4", "4"] and first.drain == []  # nothing new is ready yet
    one = plan_replicas([V4], 2, [*old, ready("n1", "4"), ReplicaView("n2", "4", "starting")])
    assert len(one.drain) == 1 and one.start == []
    both = plan_replicas([V4], 2, [*old, ready("n1", "4"), ready("n2", "4")])
    assert sorted(both.drain) == ["o1", "o2"]


@given(st.integers(1, 6), st.integers(0, 6), st.integers(0, 6))
def test_an_update_never_drains_below_the_wanted_capacity(wanted: int, old_ready: int,
                                                          new_ready: int) -> None:
    replicas = [ready(f"o{i}", "3") for i in range(old_ready)]
    replicas += [ready(f"n{i}", "4") for i in range(new_ready)]
    plan = plan_replicas([V4], wanted, replicas)
    serving_after = old_ready + new_ready - len(plan.drain)
    assert serving_after >= min(wanted, old_ready + new_ready)
