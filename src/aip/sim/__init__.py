"""The trace simulator: the platform's own placement code on Alibaba PAI's openb GPU trace.

    from aip.sim import load_nodes, load_tasks, fill_runs, replay_runs, policy_list

    nodes = load_nodes("openb_node_list_gpu_node.csv")
    tasks = load_tasks("openb_pod_list_default.csv")
    [result] = fill_runs(nodes, tasks, policy_list(None), seed=42)   # the default policy
    result.unallocated_at_100, result.unallocated_at_end

Modules: ``openb`` (loaders), ``fill`` (the paper's fill mode), ``replay`` (arrivals and
departures at the trace's times), ``variants`` (resampled traces), ``runs`` (runs by policy
name), ``plot`` (PNG plots; needs matplotlib). docs/sim.md explains the modes and results.
"""

from aip.sim.fill import FillResult, mean_curve, run_fill, sample_tasks
from aip.sim.openb import Task, evenly_spaced, gpu_capacity_milli, load_nodes, load_tasks
from aip.sim.replay import ReplayResult, run_replay, speed_up
from aip.sim.runs import fill_runs, policy_list, replay_runs, trace_policy, workload_of
from aip.sim.variants import VARIANT_KINDS, category_mix, make_variant, task_category

__all__ = [
    "VARIANT_KINDS",
    "FillResult",
    "ReplayResult",
    "Task",
    "category_mix",
    "evenly_spaced",
    "fill_runs",
    "gpu_capacity_milli",
    "load_nodes",
    "load_tasks",
    "make_variant",
    "mean_curve",
    "policy_list",
    "replay_runs",
    "run_fill",
    "run_replay",
    "sample_tasks",
    "speed_up",
    "task_category",
    "trace_policy",
    "workload_of",
]
