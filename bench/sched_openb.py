"""Placement quality on Alibaba PAI's openb GPU trace: every registered policy in fill mode
over seeds 42-51, next to the numbers Weng et al. (USENIX ATC'23) publish for the same method.

    python bench/sched_openb.py                                   # all policies, seeds 42-51
    python bench/sched_openb.py --policies aip,fgd --seeds 42-44 --jobs 1
    python bench/sched_openb.py --plot docs/img/openb_fill.png    # mean curves per policy
    python bench/sched_openb.py --variants --seeds 42-44          # and on resampled traces
    python bench/sched_openb.py --variants cpu-heavy,share-heavy  # some of them

The trace comes from alibaba/clusterdata (cluster-trace-gpu-v2023/csv); by default it is read
from ../shared/data/openb/ next to the repository. Runs go to ``--jobs`` processes (default 2);
the SECONDS column is the scheduling loop of one run on one core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "openb"
DEFAULT_NODES = DATA / "openb_node_list_gpu_node.csv"
DEFAULT_PODS = DATA / "openb_pod_list_default.csv"

# Weng et al., ATC'23: unallocated GPU % at arrived = 100%, mean of seeds 42-51, default trace.
PAPER = {
    "random": ("Random", 13.70),
    "dot-product": ("DotProduct", 9.38),
    "gpu-clustering": ("GpuClustering", 8.35),
    "gpu-packing": ("GpuPacking", 8.22),
    "best-fit": ("BestFit", 7.14),
    "fgd": ("FGD", 4.77),
}
PEER = ("the authors' Kubernetes-based simulator (hkust-adsl/kubernetes-scheduler-simulator): "
        "about 10 min per run on 2 vCPUs, as quoted in AIP's issue 3 (not measured here)")
GRID_STEP = 0.5  # arrived % between points of the mean curves

_TRACES: dict[str, tuple[Any, Any]] = {}  # per worker process: trace name -> (nodes, tasks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=Path, default=DEFAULT_NODES)
    parser.add_argument("--pods", type=Path, default=DEFAULT_PODS)
    parser.add_argument("--seeds", default="42-51", help="a range 42-51 or a list 42,43")
    parser.add_argument("--policies", default="all", help="'all' or names separated by commas")
    parser.add_argument("--inflation", type=float, default=1.3)
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--plot", type=Path, help="PNG of the mean curves (default trace)")
    parser.add_argument("--variants", nargs="?", const="all", metavar="KINDS",
                        help="also run on resampled variants of the pod list: all (the "
                        "default) or kinds separated by commas, e.g. cpu-heavy,share-heavy")
    parser.add_argument("--variant-seed", type=int, default=0)
    parser.add_argument("--output", choices=["table", "json"], default="table")
    args = parser.parse_args()

    for path in (args.nodes, args.pods):
        if not path.is_file():
            print(f"skipped: {path} not found; get the openb trace from alibaba/clusterdata "
                  "(cluster-trace-gpu-v2023/csv) and pass --nodes/--pods")
            return
    from aip.sim.runs import policy_list
    from aip.sim.variants import VARIANT_KINDS

    policies = (policy_list("all") if args.policies == "all"
                else [name for part in args.policies.split(",")
                      for name in policy_list(part.strip())])
    seeds = parse_seeds(args.seeds)
    kinds = (list(VARIANT_KINDS) if args.variants == "all"
             else [kind.strip() for kind in (args.variants or "").split(",") if kind.strip()])
    unknown = [kind for kind in kinds if kind not in VARIANT_KINDS]
    if unknown:
        parser.error(f"unknown variant {unknown[0]!r}; known: {', '.join(VARIANT_KINDS)}")
    traces = ["default", *kinds]
    jobs = [(trace, policy, seed) for trace in traces for policy in policies for seed in seeds]
    started = time.perf_counter()
    runs = run_all(jobs, args)
    results = {
        "machine": machine(), "nodes": str(args.nodes), "pods": str(args.pods),
        "seeds": seeds, "inflation": args.inflation, "variant_seed": args.variant_seed,
        "wall_seconds": time.perf_counter() - started,
        "traces": {trace: summarize([r for r in runs if r["trace"] == trace], policies)
                   for trace in traces},
    }
    if args.plot:
        plot(runs, policies, args)
    if args.output == "json":
        print(json.dumps(results, indent=2))
    else:
        report(results)


def parse_seeds(text: str) -> list[int]:
    if "-" in text:
        first, last = (int(part) for part in text.split("-", 1))
        return list(range(first, last + 1))
    return [int(part) for part in text.split(",") if part.strip()]


def run_all(jobs: list[tuple[str, str, int]], args: argparse.Namespace) -> list[dict[str, Any]]:
    settings = (str(args.nodes), str(args.pods), args.inflation, args.variant_seed)
    runs: list[dict[str, Any]] = []
    if args.jobs <= 1:
        for job in jobs:
            runs.append(run_one(settings, job))
            progress(len(runs), len(jobs), runs[-1])
        return runs
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for run in pool.map(run_one, [settings] * len(jobs), jobs):
            runs.append(run)
            progress(len(runs), len(jobs), run)
    return runs


def run_one(settings: tuple[str, str, float, int], job: tuple[str, str, int]) -> dict[str, Any]:
    """One fill-mode run in a worker; traces are loaded once per process."""
    from aip.sim.fill import run_fill
    from aip.sim.runs import trace_policy

    nodes_path, pods_path, inflation, variant_seed = settings
    trace, policy_name, seed = job
    nodes, tasks = load_trace(trace, nodes_path, pods_path, variant_seed)
    policy = trace_policy(policy_name, tasks, seed=seed)
    result = run_fill(nodes, tasks, policy, seed=seed, inflation=inflation, label=policy_name)
    end = int(result.arrived_pct[-1] / GRID_STEP)
    return {
        "trace": trace, "policy": policy_name, "seed": seed,
        "unallocated_at_100": result.unallocated_at_100,
        "unallocated_at_end": result.unallocated_at_end, "seconds": result.seconds,
        "scheduled": result.scheduled, "failed": result.failed,
        "curve": [result.allocated_at(i * GRID_STEP) for i in range(end + 1)],
    }


def load_trace(trace: str, nodes_path: str, pods_path: str, variant_seed: int) -> tuple[Any, Any]:
    if trace not in _TRACES:
        from aip.sim.openb import load_nodes, load_tasks
        from aip.sim.variants import make_variant

        tasks = load_tasks(pods_path)
        if trace != "default":
            tasks = make_variant(tasks, trace, variant_seed)
        _TRACES[trace] = (load_nodes(nodes_path), tasks)
    return _TRACES[trace]


def summarize(runs: list[dict[str, Any]], policies: list[str]) -> list[dict[str, Any]]:
    rows = []
    for policy in policies:
        mine = [run for run in runs if run["policy"] == policy]
        at_100 = [run["unallocated_at_100"] for run in mine]
        at_end = [run["unallocated_at_end"] for run in mine]
        label, paper = PAPER.get(policy, (None, None))
        rows.append({
            "policy": policy, "paper_name": label, "runs": len(mine),
            "unallocated_at_100_mean": statistics.fmean(at_100),
            "unallocated_at_100_std": statistics.pstdev(at_100),
            "unallocated_at_end_mean": statistics.fmean(at_end),
            "seconds_per_run": statistics.fmean(run["seconds"] for run in mine),
            "paper_unallocated_at_100": paper,
            "difference": None if paper is None else statistics.fmean(at_100) - paper,
        })
    rows.sort(key=lambda row: -row["unallocated_at_100_mean"])
    return rows


def report(results: dict[str, Any]) -> None:
    seeds = results["seeds"]
    end = round(results["inflation"] * 100)
    print(f"machine: {results['machine']}")
    print(f"trace: {results['nodes']}, {results['pods']}; seeds {seeds[0]}-{seeds[-1]} "
          f"({len(seeds)}); wall {results['wall_seconds']:.0f} s")
    for trace, rows in results["traces"].items():
        print()
        title = "default trace" if trace == "default" else \
            f"variant {trace} (seed {results['variant_seed']})"
        print(f"{title}: unallocated GPU % of capacity, mean (std) over seeds")
        paper = trace == "default"
        header = ["policy", "at 100%", f"at {end}%", "s/run"]
        if paper:
            header += ["paper (ATC'23)", "difference"]
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            cells = [row["policy"] + (f" ({row['paper_name']})" if row["paper_name"] else ""),
                     f"{row['unallocated_at_100_mean']:.2f} ({row['unallocated_at_100_std']:.2f})",
                     f"{row['unallocated_at_end_mean']:.2f}", f"{row['seconds_per_run']:.2f}"]
            if paper:
                known = row["paper_unallocated_at_100"] is not None
                cells += [f"{row['paper_unallocated_at_100']:.2f}" if known else "—",
                          f"{row['difference']:+.2f}" if known else "—"]
            print("| " + " | ".join(cells) + " |")
    print()
    print(f"peer for speed: {PEER}")


def plot(runs: list[dict[str, Any]], policies: list[str], args: argparse.Namespace) -> None:
    from aip.sim.plot import plot_fill

    curves = []
    for policy in policies:
        mine = [run["curve"] for run in runs if run["trace"] == "default"
                and run["policy"] == policy]
        length = min(len(curve) for curve in mine)
        mean = [statistics.fmean(curve[i] for curve in mine) for i in range(length)]
        curves.append((policy, [i * GRID_STEP for i in range(length)], mean))
    seeds = parse_seeds(args.seeds)
    plot_fill(curves, args.plot, inflation=args.inflation,
              title=f"{args.pods.name}: mean of seeds {seeds[0]}-{seeds[-1]}")
    print(f"plot written to {args.plot}", file=sys.stderr)


def progress(done: int, total: int, run: dict[str, Any]) -> None:
    """One line on stderr, rewritten in place on a terminal."""
    if not sys.stderr.isatty():
        return
    print(f"\r[{done}/{total}] {run['trace']} {run['policy']} seed {run['seed']}: "
          f"{run['unallocated_at_100']:.2f}% in {run['seconds']:.1f} s   ",
          end="\n" if done == total else "", file=sys.stderr, flush=True)


def machine() -> str:
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}")


if __name__ == "__main__":
    main()
