"""``aip node list``: the machines, what they hold and how much of it is in use."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import typer

from aip.cli.context import open_client
from aip.cli.output import (
    OutputFormat,
    OutputOption,
    add_row,
    emit_json,
    human_bytes,
    new_table,
    note,
    number,
    stdout,
)

app = typer.Typer(help="Inspect the nodes (machines) jobs run on.", no_args_is_help=True)


@app.command("list")
def list_nodes(ctx: typer.Context, output: OutputOption = OutputFormat.table) -> None:
    """List nodes with used/total CPU, memory, GPUs per model and accelerators."""
    with open_client(ctx) as client:
        items = client.list_nodes()
    if output is OutputFormat.json:
        emit_json({"items": items})
    elif not items:
        note("no nodes registered")
    else:
        stdout().print(nodes_table(items, wide=output is OutputFormat.wide))


def nodes_table(nodes: list[dict[str, Any]], *, wide: bool = False) -> Any:
    """Used/total per resource; ``wide`` adds the labels."""
    from rich.text import Text

    columns = ["NAME", "STATUS", "CPU", "MEMORY", "GPUS", "ACCELERATORS"]
    table = new_table(*columns, *(["LABELS"] if wide else []),
                      wrap=("GPUS", "ACCELERATORS", "LABELS"))
    for node in nodes:
        allocated = node.get("allocated") or {}
        status = (Text("Ready", style="green") if node.get("schedulable", True)
                  else Text("Cordoned", style="yellow"))
        add_row(
            table, node["name"], status,
            f"{number(allocated.get('cpu', 0))}/{number(node.get('cpu'))}",
            f"{human_bytes(allocated.get('memory', 0))}/{human_bytes(node.get('memory'))}",
            gpus_summary(node.get("gpus") or []),
            accelerators_summary(node.get("accelerators") or {},
                                 allocated.get("accelerators") or {}),
            *([labels_summary(node.get("labels") or {})] if wide else []),
        )
    return table


def labels_summary(labels: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items())) or "-"


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
