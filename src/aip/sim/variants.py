"""Trace variants: the openb pod list resampled to stress one kind of task.

A placement policy tuned on one trace can overfit it. The variants keep the trace's own task
shapes and change their mix, the way the openb trace family does (``openb_pod_list_cpu*``,
``gpushare*``, ``multigpu*``, ``gpuspec*``):

    tasks = load_tasks("openb_pod_list_default.csv")
    heavy = make_variant(tasks, "share-heavy", seed=1)   # GPU shares carry 60% of the GPU request

Kinds (``target`` overrides the default fraction):

* ``cpu-heavy``: CPU-only tasks are 25% of the tasks (default trace: 13%). On openb, when the
  GPU request reaches 100%, CPU-only tasks then ask for about 40% of the CPUs (default: 18%)
  and all tasks together for about 100% (80%);
* ``share-heavy``: GPU-sharing tasks (``gpu_milli`` < 1000) carry 60% of the GPU request (28%);
* ``multi-gpu-heavy``: tasks with 2 or more GPUs carry 30% of the GPU request (7%);
* ``type-constrained``: 33% of the GPU tasks (about what the production cluster sees) may only
  use some GPU models; every task is kept, constraints are added to a seeded random subset,
  drawn from ``GPU_SPECS`` (constraint sets like those of ``openb_pod_list_gpuspec*``).

The first three draw ``size`` tasks (default: as many as the input) with replacement: the named
category with the probability that reaches its target, the others in their trace proportions.
Drawn tasks get unique names (``openb-pod-0042~17``) and keep their times.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace

from aip.errors import InvalidSpec
from aip.scheduler.model import MILLI_PER_GPU
from aip.sim.openb import Task

CPU_ONLY = "cpu-only"
SHARE = "share"
ONE_GPU = "one-gpu"
MULTI_GPU = "multi-gpu"
CATEGORIES = (CPU_ONLY, SHARE, ONE_GPU, MULTI_GPU)

DEFAULT_TARGETS = {
    "cpu-heavy": 0.25,
    "share-heavy": 0.60,
    "multi-gpu-heavy": 0.30,
    "type-constrained": 0.33,
}
VARIANT_KINDS = tuple(DEFAULT_TARGETS)

# (allowed models, weight, most GPUs of those models on one openb node). The weights follow
# the constraint sets of openb_pod_list_gpuspec33.csv roughly; a set is only given to tasks
# that some node of the openb cluster can hold.
GPU_SPECS: tuple[tuple[frozenset[str], float, int], ...] = (
    (frozenset({"T4"}), 0.25, 4),
    (frozenset({"V100M16", "V100M32"}), 0.20, 8),
    (frozenset({"G2"}), 0.15, 8),
    (frozenset({"P100"}), 0.10, 2),
    (frozenset({"P100", "V100M16", "V100M32"}), 0.10, 8),
    (frozenset({"G2", "P100", "T4", "V100M16", "V100M32"}), 0.08, 8),
    (frozenset({"P100", "T4", "V100M16", "V100M32"}), 0.07, 8),
    (frozenset({"G3"}), 0.05, 8),
)


def task_category(task: Task) -> str:
    """``cpu-only``, ``share`` (a fraction of one GPU), ``one-gpu`` or ``multi-gpu``."""
    milli = task.request.gpu_milli
    if milli == 0:
        return CPU_ONLY
    if milli < MILLI_PER_GPU:
        return SHARE
    return ONE_GPU if milli == MILLI_PER_GPU else MULTI_GPU


def make_variant(tasks: Sequence[Task], kind: str, seed: int, *, target: float | None = None,
                 size: int | None = None) -> list[Task]:
    """The ``kind`` variant of ``tasks`` (see the module docstring), reproducible by ``seed``."""
    if kind not in DEFAULT_TARGETS:
        from difflib import get_close_matches

        close = get_close_matches(kind, VARIANT_KINDS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise InvalidSpec(f"unknown trace variant {kind!r}; {hint}known: "
                          f"{', '.join(VARIANT_KINDS)}", fields={"variant": f"unknown {kind!r}"})
    fraction = DEFAULT_TARGETS[kind] if target is None else target
    if not 0 <= fraction <= 1:
        raise InvalidSpec(f"variant target must be in 0..1, not {fraction}",
                          fields={"target": "must be in 0..1"})
    if not tasks:
        return []
    rng = random.Random(seed)
    if kind == "type-constrained":
        return _constrain(tasks, fraction, rng)
    by_category: dict[str, list[Task]] = {category: [] for category in CATEGORIES}
    for task in tasks:
        by_category[task_category(task)].append(task)
    weights = _category_weights(by_category, kind, fraction)
    return _draw(by_category, weights, size or len(tasks), rng)


def category_mix(tasks: Sequence[Task]) -> dict[str, dict[str, float]]:
    """Per category: its share of the tasks and of the GPU request (both 0..1)."""
    count = {category: 0 for category in CATEGORIES}
    milli = {category: 0 for category in CATEGORIES}
    for task in tasks:
        category = task_category(task)
        count[category] += 1
        milli[category] += task.request.gpu_milli
    total_count = max(1, len(tasks))
    total_milli = max(1, sum(milli.values()))
    return {category: {"tasks": count[category] / total_count,
                       "gpu_request": milli[category] / total_milli}
            for category in CATEGORIES}


def constrained_share(tasks: Sequence[Task]) -> float:
    """The share of GPU tasks that may only use some GPU models."""
    gpu_tasks = [task for task in tasks if task.request.gpu_milli]
    if not gpu_tasks:
        return 0.0
    return sum(1 for task in gpu_tasks if task.request.gpu_types) / len(gpu_tasks)


def _category_weights(by_category: dict[str, list[Task]], kind: str,
                      fraction: float) -> dict[str, float]:
    """Probability of drawing from each category so that the named one reaches ``fraction``
    (of the tasks for ``cpu-heavy``, of the GPU request otherwise)."""
    counts = {category: len(members) for category, members in by_category.items()}
    total = sum(counts.values())
    if kind == "cpu-heavy":
        _require(by_category, CPU_ONLY, kind)
        gpu_total = total - counts[CPU_ONLY]
        weights = {category: (1 - fraction) * count / gpu_total if gpu_total else 0.0
                   for category, count in counts.items()}
        weights[CPU_ONLY] = fraction if gpu_total else 1.0
        return weights
    boosted = SHARE if kind == "share-heavy" else MULTI_GPU
    _require(by_category, boosted, kind)
    others = [c for c in (SHARE, ONE_GPU, MULTI_GPU) if c != boosted and counts[c]]
    gpu_share = 1 - counts[CPU_ONLY] / total  # GPU tasks keep their share of the task count
    if not others:
        return {CPU_ONLY: 1 - gpu_share, boosted: gpu_share}
    # Among GPU tasks, draw the boosted category with probability p such that its expected
    # GPU request p*m_b makes ``fraction`` of p*m_b + (1-p)*m_o (m: mean request per task).
    mean_boosted = _mean_milli(by_category[boosted])
    other_count = sum(counts[c] for c in others)
    mean_other = sum(_mean_milli(by_category[c]) * counts[c] for c in others) / other_count
    denominator = fraction * mean_other + (1 - fraction) * mean_boosted
    p = fraction * mean_other / denominator if denominator else 0.0
    weights = {CPU_ONLY: 1 - gpu_share, boosted: gpu_share * p}
    for category in others:
        weights[category] = gpu_share * (1 - p) * counts[category] / other_count
    return weights


def _draw(by_category: dict[str, list[Task]], weights: dict[str, float], size: int,
          rng: random.Random) -> list[Task]:
    categories = [c for c in CATEGORIES if weights.get(c, 0) > 0 and by_category[c]]
    chosen = rng.choices(categories, weights=[weights[c] for c in categories], k=size)
    drawn = []
    for number, category in enumerate(chosen):
        task = rng.choice(by_category[category])
        drawn.append(replace(task, name=f"{task.name}~{number}"))
    return drawn


def _constrain(tasks: Sequence[Task], fraction: float, rng: random.Random) -> list[Task]:
    result = list(tasks)
    gpu_positions = [i for i, task in enumerate(result) if task.request.gpu_milli]
    have = sum(1 for i in gpu_positions if result[i].request.gpu_types)
    free = [i for i in gpu_positions if not result[i].request.gpu_types]
    wanted = max(0, min(len(free), round(fraction * len(gpu_positions)) - have))
    for position in rng.sample(free, wanted):
        task = result[position]
        whole = max(1, task.request.whole_gpus)
        specs = [(models, weight) for models, weight, most in GPU_SPECS if most >= whole]
        models = rng.choices([m for m, _ in specs], weights=[w for _, w in specs])[0]
        result[position] = replace(task, request=replace(task.request, gpu_types=models))
    return result


def _mean_milli(tasks: list[Task]) -> float:
    return sum(task.request.gpu_milli for task in tasks) / len(tasks) if tasks else 0.0


def _require(by_category: dict[str, list[Task]], category: str, kind: str) -> None:
    if not by_category[category]:
        raise InvalidSpec(f"variant {kind!r} needs {category} tasks in the trace; it has none",
                          fields={"variant": f"no {category} tasks to draw"})
