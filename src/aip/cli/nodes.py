"""``aip node list``: the machines, what they hold and how much of it is in use."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import typer

from aip.cli.context import open_client
from aip.cli.output import OutputFormat, OutputOption

app = typer.Typer(help="Inspect the nodes (machines) jobs run on.", no_args_is_help=True)


@app.command("list")
def list_nodes(ctx: typer.Context, output: OutputOption = OutputFormat.table) -> None:
    """List nodes with used/total CPU, memory, GPUs per model and accelerators."""
    from aip.cli.output import emit_json, note, stdout

    with open_client(ctx) as client:
        items = client.list_nodes()
    if output is OutputFormat.json:
        emit_json({"items": items})
    elif not items:
        note("no nodes registered")
    else:
        stdout().print(nodes_table(items))


def nodes_table(nodes: list[dict[str, Any]]) -> Any:
    from rich.text import Text

    from aip.cli.output import human_bytes, new_table, number

    table = new_table("NAME", "STATUS", "CPU", "MEMORY", "GPUS", "ACCELERATORS", "LABELS")
    for node in nodes:
        allocated = node.get("allocated") or {}
        status = (Text("Ready", style="green") if node.get("schedulable", True)
                  else Text("Cordoned", style="yellow"))
        table.add_row(
            node["name"], status,
            f"{number(allocated.get('cpu', 0))}/{number(node.get('cpu'))}",
            f"{human_bytes(allocated.get('memory', 0))}/{human_bytes(node.get('memory'))}",
            gpus_summary(node.get("gpus") or []),
            accelerators_summary(node.get("accelerators") or {},
                                 allocated.get("accelerators") or {}),
            ",".join(f"{k}={v}" for k, v in sorted((node.get("labels") or {}).items())) or "-",
        )
    return table


def gpus_summary(gpus: list[dict[str, Any]]) -> str:
    """Used/total per model: "1.25/2 T4, 0/1 V100M32" (used counts shares in GPUs)."""
    if not gpus:
        return "-"
    total: dict[str, int] = defaultdict(int)
    used_milli: dict[str, int] = defaultdict(int)
    for gpu in gpus:
        model = str(gpu.get("model") or "gpu")
        total[model] += 1
        used_milli[model] += int(gpu.get("allocated_milli") or 0)
    return ", ".join(f"{used_milli[m] / 1000:g}/{total[m]} {m}" for m in sorted(total))


def accelerators_summary(declared: dict[str, int], allocated: dict[str, Any]) -> str:
    if not declared:
        return "-"
    return ", ".join(f"{allocated.get(kind, 0)}/{count} {kind}"
                     for kind, count in sorted(declared.items()))
