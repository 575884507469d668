"""Replay mode: the trace's tasks arrive and leave at their own times.

Each task is in the system from its ``creation_time`` to its ``deletion_time`` (seconds, as in
the openb pod list; no deletion time: it stays to the end):

* at its creation time the task is placed at once if it fits (the platform's placement code,
  ``aip.scheduler.gang.place_gang`` over one long-lived ``ClusterState``); otherwise it waits
  in a FIFO pending queue;
* at its deletion time a running task leaves and gives its resources back
  (``gang.release_all``); a task still waiting is withdrawn, as a pod deleted while pending,
  and counts as never scheduled. Deletion times are absolute: waiting does not extend a
  task's end;
* whenever something leaves, the waiting tasks are retried in arrival order before the tasks
  arriving at that instant. No head-of-line blocking: a task that does not fit does not stop
  later ones (as in Kubernetes' scheduler);
* events at the same second: departures first, then retries, then arrivals in trace order.
  A task whose deletion time is not after its creation time never runs (``skipped``).

Retries stay cheap without changing the answer. A task waits only when it fits nowhere, and
capacity grows only where something left; so after a departure only the waiting task shapes
(request and allowed GPU models) that fit on a node that just freed capacity are tried, oldest
task first, and a shape that finds no room is not tried again until the next departure.

    result = run_replay(nodes, tasks, make_policy("aip"))
    result.delay_p95, result.utilization_mean, result.never_scheduled

The openb pod list is a sample of the cluster's tasks spread over months: replayed at its own
pace it never asks for more than about 1% of the cluster's GPUs at once. ``speedup`` makes
tasks arrive that many times faster (creation times scaled towards the first one) while each
keeps its lifetime, which raises the offered load about that much; ``speed_up`` is the same
transformation on its own.
"""

from __future__ import annotations

import heapq
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from aip.errors import InvalidSpec
from aip.scheduler.gang import GangMiss, Misfits, Replica, place_gang, release_all
from aip.scheduler.model import Node, ReplicaPlacement, ReplicaRequest
from aip.scheduler.placement import PlacementPolicy
from aip.scheduler.resources import ClusterState, could_hold
from aip.sim.openb import Task, gpu_capacity_milli

Shape = tuple[ReplicaRequest, frozenset[str] | None]

ARRIVE, LEAVE = 1, 0  # sort order at equal times: departures first


@dataclass(frozen=True)
class ReplayResult:
    policy: str
    capacity_milli: int
    tasks: int
    scheduled: int  # placed at some point
    never_scheduled: int  # withdrawn while waiting, or still waiting at the end
    skipped: int  # no lifetime (deletion time not after creation time)
    waited: int  # not placed at their arrival
    failed_placements: int  # attempts that found no room (see ``run_replay``)
    delay_p50: float  # seconds from creation to placement, over scheduled tasks
    delay_p95: float
    delay_max: float
    delay_mean: float
    trace_delay_p50: float | None  # the production scheduler's, from the trace's scheduled_time
    trace_delay_p95: float | None
    utilization_mean: float  # allocated GPU % of capacity, time-weighted while tasks arrive
    utilization_peak: float
    start_time: int  # the first arrival
    last_arrival_time: int
    end_time: int  # the last event
    seconds: float
    times: list[int] = field(repr=False)  # one point per event time
    utilization_pct: list[float] = field(repr=False)  # allocated GPU % after that time's events
    pending_gpu_pct: list[float] = field(repr=False)  # GPU request waiting, % of capacity
    placed_at: dict[int, int] = field(repr=False)  # task position in the input -> placed when

    def to_dict(self, curve_points: int | None = 200) -> dict[str, object]:
        """JSON-ready; the time series resampled on an even grid of ``curve_points`` points
        (None: one point per event time)."""
        times, utilization, pending = self.times, self.utilization_pct, self.pending_gpu_pct
        if curve_points and len(times) > curve_points:
            times, utilization, pending = _on_grid(self, curve_points)
        return {
            "mode": "replay", "policy": self.policy, "capacity_gpus": self.capacity_milli / 1000,
            "tasks": self.tasks, "scheduled": self.scheduled,
            "never_scheduled": self.never_scheduled, "skipped": self.skipped,
            "waited": self.waited, "failed_placements": self.failed_placements,
            "queueing_delay_s": {"p50": self.delay_p50, "p95": self.delay_p95,
                                 "max": self.delay_max, "mean": self.delay_mean},
            "trace_queueing_delay_s": {"p50": self.trace_delay_p50, "p95": self.trace_delay_p95},
            "utilization_mean": self.utilization_mean,
            "utilization_peak": self.utilization_peak,
            "start_time": self.start_time, "last_arrival_time": self.last_arrival_time,
            "end_time": self.end_time, "seconds": self.seconds,
            "timeline": {"time": times, "utilization_pct": utilization,
                         "pending_gpu_pct": pending},
        }


def run_replay(nodes: Sequence[Node], tasks: Sequence[Task], policy: PlacementPolicy, *,
               speedup: float = 1.0, label: str | None = None) -> ReplayResult:
    """Replay ``tasks`` on ``nodes`` with ``policy`` (see the module docstring).

    ``failed_placements`` counts attempts that found no room: each arrival that did not fit,
    and each retry (after a departure) of the oldest waiting task of a shape that did not fit.
    """
    capacity = gpu_capacity_milli(list(nodes))
    if capacity <= 0:
        raise InvalidSpec("the node list has no GPU: replay mode measures GPU utilization",
                          fields={"nodes": "no GPU"})
    if speedup != 1.0:
        tasks = speed_up(tasks, speedup)
    events, skipped = _events(tasks)
    started = time.perf_counter()
    run = _Replay(ClusterState(nodes), policy, tasks)
    last_arrival = max((event[0] for event in events if event[1] == ARRIVE), default=0)
    index = 0
    while index < len(events):
        now = events[index][0]
        released: set[int] = set()
        while index < len(events) and events[index][0] == now and events[index][1] == LEAVE:
            run.leave(events[index][2], released)
            index += 1
        if released:
            run.retry(now, released)
        while index < len(events) and events[index][0] == now:
            run.arrive(events[index][2], now)
            index += 1
        run.sample(now)
    seconds = time.perf_counter() - started
    name = label or str(getattr(policy, "name", type(policy).__name__))
    return run.result(name, capacity, len(tasks), skipped, last_arrival, seconds)


def speed_up(tasks: Sequence[Task], factor: float) -> list[Task]:
    """``tasks`` arriving ``factor`` times faster: creation times scaled towards the earliest,
    lifetimes (deletion and scheduling times relative to creation) unchanged."""
    if factor <= 0:
        raise InvalidSpec(f"speedup must be > 0, not {factor}", fields={"speedup": "must be > 0"})
    origin = min((t.creation_time for t in tasks if t.creation_time is not None), default=0)
    faster = []
    for task in tasks:
        created = task.creation_time
        if created is None:
            faster.append(task)
            continue
        moved = origin + int((created - origin) / factor)
        shift = moved - created
        faster.append(replace(
            task, creation_time=moved,
            deletion_time=None if task.deletion_time is None else task.deletion_time + shift,
            scheduled_time=None if task.scheduled_time is None else task.scheduled_time + shift))
    return faster


def _events(tasks: Sequence[Task]) -> tuple[list[tuple[int, int, int]], int]:
    events: list[tuple[int, int, int]] = []
    skipped = 0
    for number, task in enumerate(tasks):
        if task.creation_time is None:
            raise InvalidSpec(f"task {task.name!r} has no creation_time: replay mode needs "
                              "the times of every task",
                              fields={f"{task.name}.creation_time": "missing"})
        if task.deletion_time is not None and task.deletion_time <= task.creation_time:
            skipped += 1
            continue
        events.append((task.creation_time, ARRIVE, number))
        if task.deletion_time is not None:
            events.append((task.deletion_time, LEAVE, number))
    events.sort()
    return events, skipped


class _Replay:
    """The mutable state of one replay: cluster, running and waiting tasks, counters."""

    def __init__(self, state: ClusterState, policy: PlacementPolicy,
                 tasks: Sequence[Task]) -> None:
        self.state = state
        self.policy = policy
        self.tasks = tasks
        self.running: dict[int, list[ReplicaPlacement]] = {}
        self.waiting: dict[Shape, deque[int]] = {}  # shape -> task numbers, oldest first
        self.withdrawn: set[int] = set()  # waiting tasks deleted before placement
        self.waiting_count = 0
        self.waiting_milli = 0
        self.misfits: Misfits = set()  # shapes that fit nowhere now
        self.allocated_milli = 0
        self.waited = 0
        self.failed = 0
        self.delays: list[int] = []
        self.placed_at: dict[int, int] = {}
        self.times: list[int] = []
        self.utilization: list[int] = []
        self.pending: list[int] = []

    def arrive(self, number: int, now: int) -> None:
        task = self.tasks[number]
        shape = _shape(task)
        if shape not in self.misfits and self._place(number, shape, now):
            return
        self.failed += 1
        self.waited += 1
        self.waiting.setdefault(shape, deque()).append(number)
        self.waiting_count += 1
        self.waiting_milli += task.request.gpu_milli

    def leave(self, number: int, released: set[int]) -> None:
        placements = self.running.pop(number, None)
        if placements is None:  # still waiting: withdrawn, as a pod deleted while pending
            self.withdrawn.add(number)
            self.waiting_count -= 1
            self.waiting_milli -= self.tasks[number].request.gpu_milli
            return
        release_all(self.state, placements)
        self.allocated_milli -= self.tasks[number].request.gpu_milli
        for placement in placements:
            released.add(self.state.by_name[placement.node].position)

    def retry(self, now: int, released: set[int]) -> None:
        """Retry waiting shapes that fit on a node in ``released``, oldest task first."""
        nodes = [self.state.nodes[position] for position in released]
        heads: list[tuple[int, int, Shape]] = []  # (creation time, task number, shape)
        for shape in list(self.misfits):
            request, models = shape
            if not any(could_hold(node, request, models) for node in nodes):
                continue  # still fits nowhere
            self.misfits.discard(shape)
            head = self._head(shape)
            if head is not None:
                heads.append((self._arrival(head), head, shape))
        heapq.heapify(heads)
        while heads:
            _created, number, shape = heapq.heappop(heads)
            if not self._place(number, shape, now):
                self.failed += 1
                continue
            queue = self.waiting[shape]
            queue.popleft()
            self.waiting_count -= 1
            self.waiting_milli -= self.tasks[number].request.gpu_milli
            head = self._head(shape)
            if head is not None:
                heapq.heappush(heads, (self._arrival(head), head, shape))

    def sample(self, now: int) -> None:
        self.times.append(now)  # milli-GPU here; result() turns them into % of capacity
        self.utilization.append(self.allocated_milli)
        self.pending.append(self.waiting_milli)

    def result(self, policy: str, capacity: int, total: int, skipped: int, last_arrival: int,
               seconds: float) -> ReplayResult:
        utilization = [100 * milli / capacity for milli in self.utilization]
        pending = [100 * milli / capacity for milli in self.pending]
        delays = sorted(self.delays)
        trace_delays = sorted(
            task.scheduled_time - task.creation_time for task in self.tasks
            if task.scheduled_time is not None and task.creation_time is not None)
        start = self.times[0] if self.times else 0
        end = self.times[-1] if self.times else 0
        return ReplayResult(
            policy=policy, capacity_milli=capacity,
            tasks=total, scheduled=len(delays), never_scheduled=total - skipped - len(delays),
            skipped=skipped, waited=self.waited, failed_placements=self.failed,
            delay_p50=_percentile(delays, 50), delay_p95=_percentile(delays, 95),
            delay_max=float(delays[-1]) if delays else 0.0,
            delay_mean=sum(delays) / len(delays) if delays else 0.0,
            trace_delay_p50=_percentile(trace_delays, 50) if trace_delays else None,
            trace_delay_p95=_percentile(trace_delays, 95) if trace_delays else None,
            utilization_mean=_time_weighted_mean(self.times, utilization, last_arrival),
            utilization_peak=max(utilization, default=0.0), start_time=start,
            last_arrival_time=last_arrival, end_time=end,
            seconds=seconds, times=self.times, utilization_pct=utilization,
            pending_gpu_pct=pending, placed_at=self.placed_at)

    def _place(self, number: int, shape: Shape, now: int) -> bool:
        task = self.tasks[number]
        replica = Replica("task", 0, task.request, shape[1], 0)
        placed = place_gang(self.state, [replica], self.policy, self.misfits)
        if isinstance(placed, GangMiss):
            return False
        self.running[number] = placed
        self.allocated_milli += task.request.gpu_milli
        assert task.creation_time is not None
        self.delays.append(now - task.creation_time)
        self.placed_at[number] = now
        return True

    def _arrival(self, number: int) -> int:
        created = self.tasks[number].creation_time
        assert created is not None  # checked by _events
        return created

    def _head(self, shape: Shape) -> int | None:
        """The oldest task of ``shape`` still waiting (withdrawn ones are dropped)."""
        queue = self.waiting.get(shape)
        while queue and queue[0] in self.withdrawn:
            self.withdrawn.discard(queue.popleft())
        return queue[0] if queue else None


def _shape(task: Task) -> Shape:
    return task.request, task.request.gpu_types or None


def _percentile(values: list[int], percent: float) -> float:
    """Nearest-rank percentile of sorted ``values`` (0 when empty)."""
    if not values:
        return 0.0
    rank = max(1, -(-len(values) * percent // 100))
    return float(values[int(rank) - 1])


def _time_weighted_mean(times: list[int], values: list[float], until: int) -> float:
    """Mean from ``times[0]`` to ``until`` of the step function that holds ``values[i]`` from
    ``times[i]`` to ``times[i+1]``."""
    span = until - times[0] if times else 0
    if span <= 0:
        return values[0] if values else 0.0
    area = 0.0
    for i in range(len(times) - 1):
        if times[i] >= until:
            break
        area += values[i] * (min(times[i + 1], until) - times[i])
    return area / span


def _on_grid(result: ReplayResult, points: int) -> tuple[list[int], list[float], list[float]]:
    start, end = result.times[0], result.times[-1]
    grid = sorted({start + (end - start) * i // (points - 1) for i in range(points)})
    at = [max(0, bisect_right(result.times, moment) - 1) for moment in grid]
    return (grid, [result.utilization_pct[i] for i in at],
            [result.pending_gpu_pct[i] for i in at])
