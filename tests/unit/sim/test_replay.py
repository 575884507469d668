"""Replay mode on a trace small enough to check by hand, and its retry shortcut checked
against a plain replay that retries every waiting task after every departure."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from aip.errors import InvalidSpec
from aip.scheduler.gang import GangMiss, Replica, place_gang, release_all
from aip.scheduler.model import Node, ReplicaPlacement, ReplicaRequest
from aip.scheduler.placement import Choice, PlacementPolicy
from aip.scheduler.policies import DEFAULT_POLICY, make_policy, policy_names
from aip.scheduler.resources import ClusterState
from aip.sim.openb import Task
from aip.sim.replay import run_replay, speed_up
from tests.unit.sim.builders import node, task

# One node with one GPU. Times in seconds.
TRACE = [
    task("a", gpu=1000, created=0, deleted=100),  # runs 0-100
    task("b", gpu=1000, created=10, deleted=300),  # waits for a: placed at 100, delay 90
    task("c", gpu=1000, created=20, deleted=50),  # waits, deleted at 50 while waiting
    task("d", cpu=1, created=30, deleted=300),  # CPU-only: placed at once
    task("f", gpu=2000, created=40, deleted=500),  # two GPUs: never fits; blocks nobody
    task("e", gpu=500, created=150, deleted=400),  # waits for b: placed at 300, delay 150
    task("g", cpu=1, created=250, deleted=260),  # the last arrival
    task("z", gpu=500, created=70, deleted=70),  # no lifetime: skipped
]


def test_a_hand_checked_replay() -> None:
    result = run_replay([node("n0", gpus=1)], TRACE, make_policy(DEFAULT_POLICY))
    assert (result.tasks, result.skipped) == (8, 1)
    assert result.scheduled == 5  # a, b, d, e, g
    assert result.never_scheduled == 2  # c withdrawn while waiting, f never fits
    assert result.waited == 4  # b, c, f, e did not fit at arrival
    assert result.failed_placements == 4  # their arrivals; retries found room at once
    # delays, sorted: a 0, d 0, g 0, b 90, e 150
    assert (result.delay_p50, result.delay_p95, result.delay_max) == (0.0, 150.0, 150.0)
    assert result.delay_mean == pytest.approx(48.0)
    assert result.times == [0, 10, 20, 30, 40, 50, 100, 150, 250, 260, 300, 400, 500]
    assert result.utilization_pct == [100.0] * 10 + [50.0, 0.0, 0.0]
    assert result.pending_gpu_pct == [0, 100, 200, 200, 400, 300, 200, 250, 250, 250, 200,
                                      200, 0]
    # allocated 100% from the first arrival (0) to the last one (250)
    assert result.utilization_mean == 100.0
    assert result.utilization_peak == 100.0
    assert (result.start_time, result.last_arrival_time, result.end_time) == (0, 250, 500)


def test_the_trace_delay_comes_from_its_scheduled_times() -> None:
    tasks = [task("a", gpu=100, created=0, deleted=10, scheduled=2),
             task("b", gpu=100, created=5, deleted=10, scheduled=9),
             task("c", gpu=100, created=6, deleted=10)]
    result = run_replay([node("n0")], tasks, make_policy(DEFAULT_POLICY))
    assert (result.trace_delay_p50, result.trace_delay_p95) == (2.0, 4.0)
    assert result.delay_max == 0.0


def test_to_dict_resamples_the_timeline_on_an_even_grid() -> None:
    result = run_replay([node("n0", gpus=1)], TRACE, make_policy(DEFAULT_POLICY))
    data = result.to_dict(curve_points=6)
    timeline = data["timeline"]
    assert isinstance(timeline, dict)
    assert timeline["time"] == [0, 100, 200, 300, 400, 500]
    assert timeline["utilization_pct"] == [100.0, 100.0, 100.0, 50.0, 0.0, 0.0]
    assert data["queueing_delay_s"] == {"p50": 0.0, "p95": 150.0, "max": 150.0, "mean": 48.0}
    for key in ("failed_placements", "never_scheduled", "utilization_mean", "seconds"):
        assert key in data


def test_speed_up_brings_arrivals_closer_and_keeps_lifetimes() -> None:
    tasks = [task("a", gpu=100, created=100, deleted=150, scheduled=101),
             task("b", gpu=100, created=300, deleted=1000)]
    fast = speed_up(tasks, 4)
    assert [(t.creation_time, t.deletion_time) for t in fast] == [(100, 150), (150, 850)]
    assert fast[0].scheduled_time == 101
    with pytest.raises(InvalidSpec):
        speed_up(tasks, 0)


def test_replay_needs_creation_times() -> None:
    with pytest.raises(InvalidSpec, match="has no creation_time"):
        run_replay([node("n0")], [task("a", gpu=100)], make_policy(DEFAULT_POLICY))


class CountingPolicy:
    """Wraps a policy and records which requests it was asked about."""

    def __init__(self, inner: PlacementPolicy) -> None:
        self.inner = inner
        self.name = inner.name
        self.asked: list[ReplicaRequest] = []

    def choose(self, state: ClusterState, request: ReplicaRequest,
               models: frozenset[str] | None) -> Choice | None:
        self.asked.append(request)
        return self.inner.choose(state, request, models)


def test_after_a_departure_only_shapes_that_fit_the_freed_node_are_retried() -> None:
    """n1 (T4) frees a GPU; the task waiting for two V100s is not asked about again."""
    nodes = [node("n0", gpus=1, model="V100"), node("n1", gpus=1, model="T4")]
    big = task("big", gpu=2000, models=("V100",), created=5, deleted=100)
    tasks = [task("t4", gpu=1000, models=("T4",), created=0, deleted=10), big]
    policy = CountingPolicy(make_policy(DEFAULT_POLICY))
    result = run_replay(nodes, tasks, policy)
    assert policy.asked == [tasks[0].request, big.request]  # two arrivals, no retry
    assert result.never_scheduled == 1


@pytest.mark.parametrize("seed", range(30))
def test_the_retry_shortcut_changes_no_decision(seed: int) -> None:
    rng = random.Random(seed)
    nodes = [node(f"n{i}", gpus=rng.choice([1, 2, 4]), cpu=rng.choice([4, 8, 16]),
                  model=rng.choice(["T4", "V100"])) for i in range(3)]
    tasks = []
    for number in range(60):
        created = rng.randrange(0, 400)
        gpu = rng.choice([0, 250, 500, 1000, 1000, 2000, 4000])
        models = rng.choice([(), (), ("T4",), ("V100",)]) if gpu else ()
        tasks.append(task(f"t{number}", gpu=gpu, cpu=rng.choice([1, 2, 4]), models=models,
                          created=created, deleted=created + rng.randrange(1, 200)))
    # Randomized policies draw once per call, and the shortcut makes fewer calls.
    name = rng.choice([name for name in policy_names() if "random" not in name])
    result = run_replay(nodes, tasks, make_policy(name, seed=seed))
    expected = plain_replay(nodes, tasks, make_policy(name, seed=seed))
    assert result.placed_at == expected


def plain_replay(nodes: Sequence[Node], tasks: Sequence[Task],
                 policy: PlacementPolicy) -> dict[int, int]:
    """The definition, without shortcuts: after each departure, try every waiting task in
    arrival order. Returns {task number: when it was placed} for scheduled tasks."""
    state = ClusterState(nodes)
    events = []
    for number, t in enumerate(tasks):
        assert t.creation_time is not None and t.deletion_time is not None
        if t.deletion_time > t.creation_time:
            events += [(t.creation_time, 1, number), (t.deletion_time, 0, number)]
    events.sort()
    running: dict[int, list[ReplicaPlacement]] = {}
    waiting: list[int] = []
    delays: dict[int, int] = {}  # placed at

    def place(number: int, now: int) -> bool:
        request = tasks[number].request
        replica = Replica("task", 0, request, request.gpu_types or None, 0)
        placed = place_gang(state, [replica], policy)
        if isinstance(placed, GangMiss):
            return False
        running[number] = placed
        delays[number] = now
        return True

    index = 0
    while index < len(events):
        now = events[index][0]
        freed = False
        while index < len(events) and events[index][:2] == (now, 0):
            number = events[index][2]
            if number in running:
                release_all(state, running.pop(number))
                freed = True
            else:
                waiting.remove(number)
            index += 1
        if freed:
            waiting = [number for number in waiting if not place(number, now)]
        while index < len(events) and events[index][0] == now:
            number = events[index][2]
            if not place(number, now):
                waiting.append(number)
            index += 1
    return delays
