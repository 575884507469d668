"""``aip sim ...``: the trace simulator on the platform's own placement policies.

    aip sim fill --nodes openb_node_list_gpu_node.csv --pods openb_pod_list_default.csv
    aip sim fill ... --policy all --output json > fill.json
    aip sim replay --nodes ... --pods ... --node-fraction 0.05 --speedup 30
    aip sim plot fill.json --png fill.png

The simulator (``aip.sim``) and matplotlib are imported inside the commands, so ``aip --help``
stays fast. docs/sim.md explains the modes and how to read the results.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from aip.cli.output import OutputFormat, OutputOption, add_row, emit_json, new_table, note, stdout

if TYPE_CHECKING:
    from aip.sim.fill import FillResult
    from aip.sim.openb import Task
    from aip.sim.replay import ReplayResult

app = typer.Typer(
    help="Simulate placement policies on a cluster trace (Alibaba PAI's openb format).",
    no_args_is_help=True)

NodesOption = Annotated[Path, typer.Option(
    "--nodes", metavar="NODES.csv", help="Node list (openb_node_list_*.csv).",
    show_default=False)]
PodsOption = Annotated[Path, typer.Option(
    "--pods", metavar="PODS.csv", help="Pod (task) list (openb_pod_list_*.csv).",
    show_default=False)]
PolicyOption = Annotated[str | None, typer.Option(
    "--policy", metavar="NAME|all",
    help="Placement policy by name (default: AIP's default); 'all' runs every registered one.",
    show_default=False)]
SeedOption = Annotated[int, typer.Option(
    "--seed", help="Seed of the sampling, the variant and any randomized policy.")]
PlotOption = Annotated[Path | None, typer.Option(
    "--plot", metavar="FILE.png", help="Also write a PNG plot (needs matplotlib).",
    show_default=False)]
VariantOption = Annotated[str | None, typer.Option(
    "--variant", metavar="KIND",
    help="Resample the pods first: cpu-heavy, share-heavy, multi-gpu-heavy, type-constrained.",
    show_default=False)]

T = TypeVar("T")


@app.command("fill")
def fill(
    nodes: NodesOption,
    pods: PodsOption,
    policy: PolicyOption = None,
    seed: SeedOption = 42,
    inflation: Annotated[float, typer.Option(
        "--inflation", help="Stop sampling once the GPU request reaches this x capacity.")] = 1.3,
    variant: VariantOption = None,
    output: OutputOption = OutputFormat.table,
    plot: PlotOption = None,
) -> None:
    """Fill mode (Weng et al., ATC'23): sample pods until their GPU request reaches INFLATION x
    the cluster's GPUs, schedule each once; report the GPU % left unallocated when arrivals
    reach 100% and at the end."""
    from aip.sim.fill import run_fill
    from aip.sim.openb import load_nodes
    from aip.sim.runs import policy_list, trace_policy, workload_of

    names = policy_list(policy)
    node_list = load_nodes(nodes)
    tasks = _load_tasks(pods, variant, seed)
    workload = workload_of(tasks)
    results = _each(names, "fill", lambda name: run_fill(
        node_list, tasks, trace_policy(name, tasks, seed=seed, workload=workload),
        seed=seed, inflation=inflation, label=name))
    if plot is not None:
        from aip.sim.plot import plot_fill

        plot_fill([(r.policy, r.arrived_pct, r.allocated_pct) for r in results], plot,
                  inflation=inflation, title=f"{pods.name}, seed {seed}")
    if output is OutputFormat.json:
        source = {"nodes": str(nodes), "pods": str(pods), "variant": variant}
        if len(results) == 1:
            emit_json({**results[0].to_dict(), **source})
        else:
            emit_json({"mode": "fill", "seed": seed, "inflation": inflation, **source,
                       "runs": [result.to_dict() for result in results]})
    else:
        stdout().print(fill_table(results, wide=output is OutputFormat.wide))
        _context(len(node_list), results[0].capacity_milli, len(tasks), pods, variant,
                 "UNALLOC: GPU % of capacity left unallocated; SECONDS: the scheduling loop")
    if plot is not None:
        note(f"plot written to {plot}")


@app.command("replay")
def replay(
    nodes: NodesOption,
    pods: PodsOption,
    policy: PolicyOption = None,
    seed: SeedOption = 42,
    speedup: Annotated[float, typer.Option(
        "--speedup", help="Pods arrive this many times faster; each keeps its lifetime.")] = 1.0,
    node_fraction: Annotated[float, typer.Option(
        "--node-fraction", metavar="F",
        help="Replay on this fraction of the nodes (evenly spaced through the list).")] = 1.0,
    variant: VariantOption = None,
    output: OutputOption = OutputFormat.table,
    plot: PlotOption = None,
) -> None:
    """Replay mode: pods arrive at their creation time and leave at their deletion time; a
    pod that does not fit waits (FIFO, retried when something leaves). Reports queueing
    delay, GPU utilization over time and failed placements."""
    from aip.sim.openb import evenly_spaced, load_nodes
    from aip.sim.replay import run_replay
    from aip.sim.runs import policy_list, trace_policy, workload_of

    names = policy_list(policy)
    node_list = evenly_spaced(load_nodes(nodes), node_fraction)
    tasks = _load_tasks(pods, variant, seed)
    workload = workload_of(tasks)
    results = _each(names, "replay", lambda name: run_replay(
        node_list, tasks, trace_policy(name, tasks, seed=seed, workload=workload),
        speedup=speedup, label=name))
    if plot is not None:
        from aip.sim.plot import plot_replay

        plot_replay(results, plot, title=f"{pods.name}, speedup {speedup:g}, "
                    f"{len(node_list)} nodes")
    if output is OutputFormat.json:
        source = {"nodes": str(nodes), "pods": str(pods), "variant": variant,
                  "speedup": speedup, "node_fraction": node_fraction}
        if len(results) == 1:
            emit_json({**results[0].to_dict(), **source})
        else:
            emit_json({"mode": "replay", **source,
                       "runs": [result.to_dict() for result in results]})
    else:
        stdout().print(replay_table(results, wide=output is OutputFormat.wide))
        _context(len(node_list), results[0].capacity_milli, len(tasks), pods, variant,
                 "NEVER: never placed; WAITED: did not fit at arrival; FAILED: placement "
                 "attempts without room; UTIL: allocated GPU %, mean while pods arrive")
    if plot is not None:
        note(f"plot written to {plot}")


@app.command("plot")
def plot(
    results: Annotated[list[Path], typer.Argument(
        metavar="RESULT.json...", help="Output of `aip sim fill --output json` (one or more).",
        show_default=False)],
    png: Annotated[Path, typer.Option(
        "--png", metavar="FILE.png", help="Where to write the plot.", show_default=False)],
) -> None:
    """Plot allocated % against arrived % from saved fill-mode results, with the ideal line."""
    from aip.sim.plot import plot_fill

    curves = []
    inflation = 1.0
    for path in results:
        for run in _fill_runs_in(path):
            curve = run["curve"]
            curves.append((str(run["policy"]), curve["arrived_pct"], curve["allocated_pct"]))
            inflation = max(inflation, float(run.get("inflation") or 1.3))
    plot_fill(curves, png, inflation=inflation)
    note(f"plot written to {png}")


def fill_table(results: Sequence[FillResult], *, wide: bool = False) -> Any:
    end = f"UNALLOC@{round(results[0].inflation * 100)}%" if results else "UNALLOC@END"
    columns = ["POLICY", "UNALLOC@100%", end, "SCHEDULED", "FAILED", "SECONDS"]
    table = new_table(*columns, *(["SEED", "TASKS", "GPUS"] if wide else []))
    for result in results:
        add_row(table, result.policy, f"{result.unallocated_at_100:.2f}",
                f"{result.unallocated_at_end:.2f}", str(result.scheduled), str(result.failed),
                f"{result.seconds:.2f}",
                *([str(result.seed), str(result.tasks), f"{result.capacity_milli / 1000:g}"]
                  if wide else []))
    return table


def replay_table(results: Sequence[ReplayResult], *, wide: bool = False) -> Any:
    columns = ["POLICY", "SCHEDULED", "NEVER", "WAITED", "FAILED", "DELAY P50", "P95", "MAX",
               "UTIL MEAN", "PEAK", "SECONDS"]
    table = new_table(*columns, *(["SKIPPED", "MEAN DELAY"] if wide else []))
    for result in results:
        add_row(table, result.policy, str(result.scheduled), str(result.never_scheduled),
                str(result.waited), str(result.failed_placements), f"{result.delay_p50:g}s",
                f"{result.delay_p95:g}s", f"{result.delay_max:g}s",
                f"{result.utilization_mean:.2f}%", f"{result.utilization_peak:.2f}%",
                f"{result.seconds:.2f}",
                *([str(result.skipped), f"{result.delay_mean:.1f}s"] if wide else []))
    return table


def _load_tasks(pods: Path, variant: str | None, seed: int) -> list[Task]:
    from aip.sim.openb import load_tasks

    tasks = load_tasks(pods)
    if variant is None:
        return tasks
    from aip.sim.variants import make_variant

    return make_variant(tasks, variant, seed)


def _each(names: Sequence[str], mode: str, run: Callable[[str], T]) -> list[T]:
    results = []
    for name in names:
        with _status(f"{mode}: {name}…"):
            results.append(run(name))
    return results


@contextmanager
def _status(message: str) -> Iterator[None]:
    """A spinner on stderr while one run works, when stderr is a terminal."""
    from aip.cli.output import stderr

    console = stderr()
    if not console.is_terminal:
        yield
        return
    with console.status(message):
        yield


def _context(nodes: int, capacity_milli: int, tasks: int, pods: Path, variant: str | None,
             legend: str) -> None:
    trace = f"{pods.name} ({variant})" if variant else pods.name
    note(f"{nodes} nodes, {capacity_milli / 1000:g} GPUs; {tasks} tasks in {trace}")
    note(legend)


def _fill_runs_in(path: Path) -> list[dict[str, Any]]:
    from aip.errors import InvalidSpec

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidSpec(f"{path}: cannot read: {exc.strerror}",
                          fields={"result": str(path)}) from None
    except json.JSONDecodeError as exc:
        raise InvalidSpec(f"{path}, line {exc.lineno}, column {exc.colno}: not JSON: {exc.msg}",
                          fields={"result": str(path)}) from None
    runs = data.get("runs", [data]) if isinstance(data, dict) else []
    good = [run for run in runs if isinstance(run, dict) and run.get("mode", "fill") == "fill"
            and isinstance(run.get("curve"), dict)]
    if not good:
        raise InvalidSpec(f"{path}: no fill-mode result with a curve; write one with "
                          "`aip sim fill ... --output json`", fields={"result": str(path)})
    return good
