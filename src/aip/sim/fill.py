"""Fill mode: the method of Weng et al. (ATC'23) on the openb trace.

Tasks are sampled from the pod list with replacement (seeded) until their GPU requests add
up to ``inflation`` (default 1.3) times the cluster's GPU capacity, shuffled, and scheduled
once each, in order, by the platform's own placement code (``aip.scheduler.gang.place_gang``
over one long-lived ``ClusterState``). A task that does not fit stays unscheduled; no task
leaves. After each task the curve records the arrived GPU request and the allocated GPU,
both in milli-GPU as % of capacity, so shares count.

    result = run_fill(nodes, tasks, make_policy("fgd", workload=...), seed=42)
    result.unallocated_at_100    # % of GPU capacity unallocated when arrivals reach 100%
"""

from __future__ import annotations

import random
import time
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field

from aip.errors import InvalidSpec
from aip.scheduler.gang import GangMiss, Replica, place_gang
from aip.scheduler.model import Node
from aip.scheduler.placement import PlacementPolicy
from aip.scheduler.resources import ClusterState
from aip.sim.openb import Task, gpu_capacity_milli


@dataclass(frozen=True)
class FillResult:
    policy: str
    seed: int
    inflation: float
    capacity_milli: int
    tasks: int
    scheduled: int
    failed: int
    unallocated_at_100: float
    unallocated_at_end: float
    seconds: float
    arrived_pct: list[float] = field(repr=False)
    allocated_pct: list[float] = field(repr=False)

    def to_dict(self, curve_points: int | None = 200) -> dict[str, object]:
        """JSON-ready; the curve thinned to about ``curve_points`` points (None: all)."""
        step = 1 if not curve_points else max(1, len(self.arrived_pct) // curve_points)
        return {
            "mode": "fill", "policy": self.policy, "seed": self.seed, "inflation": self.inflation,
            "capacity_gpus": self.capacity_milli / 1000, "tasks": self.tasks,
            "scheduled": self.scheduled, "failed": self.failed,
            "unallocated_at_100": self.unallocated_at_100,
            f"unallocated_at_{round(self.inflation * 100)}": self.unallocated_at_end,
            "seconds": self.seconds,
            "curve": {"arrived_pct": self.arrived_pct[::step],
                      "allocated_pct": self.allocated_pct[::step]},
        }

    def allocated_at(self, arrived_pct: float) -> float:
        """Allocated % once arrivals reached ``arrived_pct`` (0 before the first task)."""
        position = bisect_right(self.arrived_pct, arrived_pct)
        return self.allocated_pct[position - 1] if position else 0.0


def mean_curve(results: Sequence[FillResult], step: float = 0.5) -> tuple[list[float],
                                                                        list[float]]:
    """The allocated % averaged over ``results`` (e.g. seeds) on a grid of arrived %, every
    ``step`` points up to the smallest end among them."""
    if not results:
        return [], []
    end = min(result.arrived_pct[-1] for result in results)
    grid = [i * step for i in range(int(end / step) + 1)]
    mean = [sum(result.allocated_at(x) for result in results) / len(results) for x in grid]
    return grid, mean


def sample_tasks(tasks: Sequence[Task], capacity_milli: int, inflation: float,
                 seed: int) -> list[Task]:
    """Draw with replacement until the GPU request reaches ``inflation`` x capacity, then
    shuffle (both from one seeded generator)."""
    if not any(task.gpu_milli for task in tasks):
        raise InvalidSpec("the task list has no GPU task: fill mode cannot reach its target",
                          fields={"pods": "no task asks for a GPU"})
    if inflation <= 0:
        raise InvalidSpec(f"inflation must be > 0, not {inflation}",
                          fields={"inflation": "must be > 0"})
    rng = random.Random(seed)
    target = inflation * capacity_milli
    sampled: list[Task] = []
    total = 0
    while total < target:
        task = rng.choice(tasks)
        sampled.append(task)
        total += task.gpu_milli
    rng.shuffle(sampled)
    return sampled


def run_fill(nodes: Sequence[Node], tasks: Sequence[Task], policy: PlacementPolicy, *,
             seed: int = 42, inflation: float = 1.3, label: str | None = None) -> FillResult:
    """One fill-mode run (see the module docstring); ``label`` names the policy in the result
    (default: the policy's own ``name``). ``seconds`` times the scheduling loop only."""
    capacity = gpu_capacity_milli(list(nodes))
    if capacity <= 0:
        raise InvalidSpec("the node list has no GPU: fill mode measures GPU allocation",
                          fields={"nodes": "no GPU"})
    arrivals = sample_tasks(tasks, capacity, inflation, seed)
    started = time.perf_counter()
    state = ClusterState(nodes)
    arrived = allocated = scheduled = 0
    arrived_pct: list[float] = []
    allocated_pct: list[float] = []
    at_100: float | None = None
    for number, task in enumerate(arrivals):
        request = task.request
        arrived += request.gpu_milli
        models = request.gpu_types or None
        placed = place_gang(state, [Replica("task", 0, request, models, number)], policy)
        if not isinstance(placed, GangMiss):
            scheduled += 1
            allocated += request.gpu_milli
        arrived_pct.append(100 * arrived / capacity)
        allocated_pct.append(100 * allocated / capacity)
        if at_100 is None and arrived >= capacity:
            at_100 = 100 - allocated_pct[-1]
    seconds = time.perf_counter() - started
    return FillResult(
        policy=label or str(getattr(policy, "name", type(policy).__name__)), seed=seed,
        inflation=inflation,
        capacity_milli=capacity, tasks=len(arrivals), scheduled=scheduled,
        failed=len(arrivals) - scheduled,
        unallocated_at_100=at_100 if at_100 is not None else 100 - allocated_pct[-1],
        unallocated_at_end=100 - allocated_pct[-1], seconds=seconds,
        arrived_pct=arrived_pct, allocated_pct=allocated_pct)
