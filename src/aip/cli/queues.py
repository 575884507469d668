"""``aip queue ...``: the queues teams submit to, their quotas and what they use now."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from aip.cli.context import open_client
from aip.cli.output import (
    OutputFormat,
    OutputOption,
    add_row,
    emit_json,
    human_bytes,
    new_grid,
    new_table,
    note,
    number,
    stdout,
)

UNLIMITED = "∞"

app = typer.Typer(help="Create and inspect queues and their quotas.", no_args_is_help=True)


@app.command("list")
def list_queues(ctx: typer.Context, output: OutputOption = OutputFormat.table) -> None:
    """List queues: jobs waiting and running, resources used / quota."""
    with open_client(ctx) as client:
        items = client.list_queues()
    if output is OutputFormat.json:
        emit_json({"items": items})
    elif not items:
        note("no queues yet: `aip queue create NAME --gpu 4` makes one")
    else:
        stdout().print(queues_table(items))


@app.command("get")
def get(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME")],
    output: OutputOption = OutputFormat.table,
) -> None:
    """Show one queue: each resource used, its quota and borrowing limit."""

    with open_client(ctx) as client:
        queue = client.get_queue(name)
    if output is OutputFormat.json:
        emit_json(queue)
    else:
        stdout().print(queue_detail(queue))


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(
        metavar="NAME", help="Queue name (may come from -f instead).", show_default=False)
    ] = None,
    cohort: Annotated[str | None, typer.Option(
        help="Queues in one cohort lend each other idle quota.")] = None,
    cpu: Annotated[str | None, typer.Option(help="CPU core quota.")] = None,
    memory: Annotated[str | None, typer.Option(help="Memory quota: 256Gi.")] = None,
    gpu: Annotated[list[str] | None, typer.Option(
        metavar="N|TYPE=N",
        help="GPU quota: N over all types, or TYPE=N per model (repeatable).")] = None,
    accelerator: Annotated[list[str] | None, typer.Option(
        metavar="KIND=COUNT", help="Accelerator quota, e.g. tpu=8 (repeatable).")] = None,
    file: Annotated[Path | None, typer.Option(
        "--file", "-f", exists=True, dir_okay=False, metavar="FILE",
        help="A queue spec in YAML; flags override its fields.")] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Create a queue. Resources left out of the quota are not limited."""
    from aip.cli.specs import build_queue_spec

    base = _load_queue_file(file) if file else None
    spec = build_queue_spec(name, cohort=cohort, cpu=cpu, memory=memory, gpu=gpu or [],
                            accelerators=accelerator or [], base=base)
    with open_client(ctx) as client:
        queue = client.create_queue(spec)
    if output is OutputFormat.json:
        emit_json(queue)
    else:
        stdout().print(f"created queue {queue['name']}", style="green", markup=False)


def queues_table(queues: list[dict[str, Any]]) -> Any:
    table = new_table("NAME", "COHORT", "PENDING", "RUNNING", "CPU", "MEMORY", "GPU",
                      "ACCELERATORS", wrap=("GPU", "ACCELERATORS"))
    for queue in queues:
        used = flatten_resources(queue.get("usage") or {})
        quota = flatten_resources(queue.get("quota") or {})
        accelerators = ", ".join(f"{key[4:]} {used_of(key, used, quota)}"
                                 for key in sorted(quota) if key.startswith("acc/"))
        add_row(
            table, queue["name"], queue.get("cohort") or "-", str(queue.get("pending", 0)),
            str(queue.get("running", 0)), used_of("cpu", used, quota),
            used_of("memory", used, quota), _gpu_cell(queue.get("quota") or {}, used, quota),
            accelerators or "-",
        )
    return table


def queue_detail(queue: dict[str, Any]) -> Any:
    from rich.console import Group
    from rich.text import Text

    facts = new_grid()
    add_row(facts, "Name", queue["name"])
    add_row(facts, "Cohort", queue.get("cohort") or "-")
    if queue.get("description"):
        add_row(facts, "Description", queue["description"])
    add_row(facts, "Jobs", f"{queue.get('pending', 0)} pending, {queue.get('running', 0)} running")
    used = flatten_resources(queue.get("usage") or {})
    quota = flatten_resources(queue.get("quota") or {})
    limit = flatten_resources(queue.get("borrowing_limit") or {})
    table = new_table("RESOURCE", "USED", "QUOTA", "BORROWING LIMIT")
    for key in sorted({*used, *quota, *limit}, key=_resource_order):
        add_row(table, key, _amount(key, used.get(key, 0)),
                _amount(key, quota[key]) if key in quota else UNLIMITED,
                _amount(key, limit[key]) if key in limit else "-")
    return Group(facts, Text(""), table)


def flatten_resources(quota: dict[str, Any]) -> dict[str, Any]:
    """Quota or usage as flat keys: ``{"gpu": {"T4": 4}}`` -> ``{"gpu/T4": 4}``,
    ``{"accelerators": {"tpu": 8}}`` -> ``{"acc/tpu": 8}``; flat keys pass through."""
    flat: dict[str, Any] = {}
    for key, value in quota.items():
        if value is None:
            continue
        if key == "gpu" and isinstance(value, dict):
            flat.update({f"gpu/{model}": amount for model, amount in value.items()})
            flat.setdefault("gpu/*", 0)  # a per-model quota gives unlisted models none
        elif key == "accelerators" and isinstance(value, dict):
            flat.update({f"acc/{kind}": count for kind, count in value.items()})
        else:
            flat[key] = value
    return flat


def used_of(key: str, used: dict[str, Any], quota: dict[str, Any]) -> str:
    """ "used/quota", with ∞ where the quota does not limit the resource."""
    limit = _amount(key, quota[key]) if key in quota else UNLIMITED
    return f"{_amount(key, used.get(key, 0))}/{limit}"


def _gpu_cell(given_quota: dict[str, Any], used: dict[str, Any], quota: dict[str, Any]) -> str:
    """Per-model "T4 2/4, V100M32 0/2" for a per-type quota, else one total."""
    if not isinstance(given_quota.get("gpu"), dict):
        return used_of("gpu", used, quota)
    models = sorted(key for key in quota if key.startswith("gpu/") and key != "gpu/*")
    return ", ".join(f"{key[4:]} {used_of(key, used, quota)}" for key in models) or "-"


def _amount(key: str, value: Any) -> str:
    return human_bytes(value) if key == "memory" else number(value)


def _resource_order(key: str) -> tuple[int, str]:
    rank = {"cpu": 0, "memory": 1, "gpu": 2}.get(key.split("/")[0], 3)
    return rank, key


def _load_queue_file(path: Path) -> dict[str, Any]:
    from aip.errors import InvalidSpec
    from aip.spec import QueueSpec, load_yaml

    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidSpec(f"cannot read {path}: {exc}") from None
    spec = load_yaml(text, QueueSpec, source=str(path))
    return spec.model_dump(mode="json", exclude_unset=True)
