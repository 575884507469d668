"""The autoscaler's rules, table-driven, and its invariants under random load."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aip.serving.autoscaler import AutoscalePolicy, Observation, ScaleState, decide

POLICY = AutoscalePolicy(min_replicas=1, max_replicas=8, target_in_flight=4,
                         scale_in_cooldown=30, scale_to_zero_after=60)


def run(policy: AutoscalePolicy, loads: list[tuple[float, float]], start: int = 1) -> list[int]:
    """Replica counts decided for (time, in_flight) observations, replicas as decided."""
    state, replicas, out = ScaleState(), start, []
    for time, in_flight in loads:
        decision = decide(policy, state, Observation(time, replicas, in_flight))
        state, replicas = decision.state, decision.replicas
        out.append(replicas)
    return out


def test_a_surge_scales_out_at_once_up_to_max() -> None:
    assert run(POLICY, [(0, 1), (1, 20), (2, 100)]) == [1, 5, 8]


def test_scale_in_waits_for_the_cooldown() -> None:
    loads = [(0, 32), (1, 4), (10, 4), (29, 4), (31.5, 4), (40, 0)]
    assert run(POLICY, loads) == [8, 8, 8, 8, 1, 1]


def test_a_short_lull_keeps_the_replicas() -> None:
    loads = [(0, 32), (5, 0), (10, 0), (20, 32), (45, 0)]
    assert run(POLICY, loads) == [8, 8, 8, 8, 8]


def test_qps_target() -> None:
    policy = AutoscalePolicy(min_replicas=1, max_replicas=10, target_in_flight=None,
                             target_qps=100)
    state = ScaleState()
    decision = decide(policy, state, Observation(0, 1, in_flight=0, qps=450))
    assert decision.replicas == 5 and "450.0 req/s" in decision.reason


def test_scale_to_zero_after_idle_and_cold_start_on_a_request() -> None:
    policy = AutoscalePolicy(min_replicas=0, max_replicas=4, target_in_flight=2,
                             scale_in_cooldown=10, scale_to_zero_after=60)
    loads = [(0, 6), (5, 0), (20, 0), (59, 0), (66, 0), (70, 0), (71, 1)]
    assert run(policy, loads, start=0) == [3, 3, 1, 1, 0, 0, 1]


def test_min_replicas_are_kept_when_idle() -> None:
    assert run(POLICY, [(0, 0), (100, 0), (1000, 0)], start=3) == [3, 1, 1]


@pytest.mark.parametrize("kwargs", [
    {"min_replicas": 3, "max_replicas": 2}, {"min_replicas": 0, "max_replicas": 0},
    {"target_in_flight": None}, {"target_in_flight": 2, "target_qps": 3},
    {"target_in_flight": 0}, {"scale_in_cooldown": -1}])
def test_bad_policies_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        AutoscalePolicy(**kwargs)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 3), st.integers(1, 6),
       st.lists(st.tuples(st.floats(0, 20), st.floats(0, 60)), min_size=1, max_size=40))
def test_decisions_stay_within_bounds_and_never_drop_inside_the_cooldown(
        low: int, span: int, steps: list[tuple[float, float]]) -> None:
    policy = AutoscalePolicy(min_replicas=low, max_replicas=low + span, target_in_flight=3,
                             scale_in_cooldown=15, scale_to_zero_after=40)
    state, replicas, time = ScaleState(), low, 0.0
    history: list[tuple[float, int, float]] = []
    for gap, in_flight in steps:
        time += gap
        decision = decide(policy, state, Observation(time, replicas, in_flight))
        state = decision.state
        assert decision.replicas <= policy.max_replicas
        assert decision.replicas >= (policy.min_replicas or (1 if in_flight > 0 else 0))
        wanted_now = min(policy.max_replicas, -(-int(in_flight * 1000) // 3000))
        assert decision.replicas >= min(wanted_now, policy.max_replicas)  # out at once
        if decision.replicas < replicas and policy.min_replicas > 0:
            recent = [w for t, _r, w in history if time - t <= policy.scale_in_cooldown]
            assert all(w <= decision.replicas for w in recent)
        history.append((time, decision.replicas, in_flight / 3))
        replicas = decision.replicas


@pytest.mark.parametrize(("replicas", "in_flight", "expected"), [
    pytest.param(1, 0, "steady (held at min_replicas 1)", id="idle-at-min"),
    pytest.param(2, 400, "scale out: load 400 in flight at 4 per replica wants 100 "
                 "(held at max_replicas 8)", id="capped-at-max"),
    pytest.param(8, 400, "steady (held at max_replicas 8)", id="already-at-max"),
])
def test_the_reason_names_the_bound_that_holds_the_replicas(replicas: int, in_flight: float,
                                                            expected: str) -> None:
    state = ScaleState(replicas=replicas)
    decision = decide(POLICY, state, Observation(100, replicas, in_flight=in_flight, qps=0))
    assert decision.reason == expected
