"""Simulator runs by policy name: what the CLI and ``bench/sched_openb.py`` call.

Policies come from the platform's registry (``aip.scheduler.policies``), never from a copy.
Look-ahead policies get the trace's ``Workload`` (its task shapes and how often each occurs),
built from the task list they are run on.

    results = fill_runs(nodes, tasks, policy_list("all"), seed=42)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from aip.errors import InvalidSpec
from aip.scheduler.model import Node
from aip.scheduler.placement import PlacementPolicy
from aip.scheduler.workload import Workload
from aip.sim.fill import FillResult, run_fill
from aip.sim.openb import Task
from aip.sim.replay import ReplayResult, run_replay

ALL = "all"


def policy_list(name: str | None) -> list[str]:
    """``None``: the platform's default policy; ``all``: every registered policy; otherwise
    the named one, checked against the registry."""
    from aip.scheduler.policies import DEFAULT_POLICY, policy_names

    known = policy_names()
    if name is None:
        return [DEFAULT_POLICY]
    if name == ALL:
        return known
    if name not in known:
        from difflib import get_close_matches

        close = get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise InvalidSpec(f"unknown placement policy {name!r}; {hint}known: "
                          f"{', '.join(known)} (or {ALL!r})",
                          fields={"policy": f"unknown policy {name!r}"})
    return [name]


def workload_of(tasks: Iterable[Task]) -> Workload:
    return Workload.from_requests(task.request for task in tasks)


def trace_policy(name: str, tasks: Sequence[Task], *, seed: int,
                 workload: Workload | None = None) -> PlacementPolicy:
    """The registered policy ``name``, seeded, with the workload of ``tasks``."""
    from aip.scheduler.policies import make_policy

    return make_policy(name, seed=seed, workload=workload or workload_of(tasks))


def fill_runs(nodes: Sequence[Node], tasks: Sequence[Task], names: Sequence[str], *,
              seed: int = 42, inflation: float = 1.3) -> list[FillResult]:
    """One fill-mode run per policy in ``names``, all on the same sampled arrivals."""
    workload = workload_of(tasks)
    return [run_fill(nodes, tasks, trace_policy(name, tasks, seed=seed, workload=workload),
                     seed=seed, inflation=inflation, label=name) for name in names]


def replay_runs(nodes: Sequence[Node], tasks: Sequence[Task], names: Sequence[str], *,
                seed: int = 42, speedup: float = 1.0) -> list[ReplayResult]:
    """One replay per policy in ``names``."""
    workload = workload_of(tasks)
    return [run_replay(nodes, tasks, trace_policy(name, tasks, seed=seed, workload=workload),
                       speedup=speedup, label=name) for name in names]
