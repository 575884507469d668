"""``aip serve deploy`` and ``aip endpoint ...``: serve registered models behind the router."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from aip.cli.context import open_client
from aip.cli.output import (
    OutputFormat,
    OutputOption,
    add_row,
    emit_json,
    new_grid,
    new_table,
    note,
    stdout,
    styled_state,
)

serve_app = typer.Typer(help="Deploy models as endpoints.", no_args_is_help=True)
app = typer.Typer(help="Inspect, call and delete endpoints.", no_args_is_help=True)
_SCALE = "Replicas and autoscaling"


@serve_app.command("deploy")
def deploy(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(metavar="NAME")] = None,
    model: Annotated[str | None, typer.Option(
        metavar="URI", help="models:/NAME@ALIAS or models:/NAME/VERSION.")] = None,
    file: Annotated[Path | None, typer.Option(
        "--file", "-f", exists=True, dir_okay=False, help="An endpoint spec in YAML.")] = None,
    canary: Annotated[str | None, typer.Option(
        metavar="URI", help="A second version taking --canary-weight of the traffic.")] = None,
    canary_weight: Annotated[float, typer.Option(min=0, max=100)] = 10.0,
    shadow: Annotated[str | None, typer.Option(
        metavar="URI", help="A version receiving copies of --shadow-percent of requests.")
    ] = None,
    shadow_percent: Annotated[float, typer.Option(min=0, max=100)] = 10.0,
    min_replicas: Annotated[int | None, typer.Option(min=0, rich_help_panel=_SCALE)] = None,
    max_replicas: Annotated[int | None, typer.Option(min=1, rich_help_panel=_SCALE)] = None,
    target_in_flight: Annotated[float | None, typer.Option(
        rich_help_panel=_SCALE, help="Requests in flight per replica (default 4).")] = None,
    target_qps: Annotated[float | None, typer.Option(
        rich_help_panel=_SCALE, help="Requests per second per replica (instead).")] = None,
    scale_in_cooldown: Annotated[str | None, typer.Option(
        rich_help_panel=_SCALE, metavar="DURATION")] = None,
    scale_to_zero_after: Annotated[str | None, typer.Option(
        rich_help_panel=_SCALE, metavar="DURATION")] = None,
    cpus: Annotated[str | None, typer.Option(help="CPU cores per replica.")] = None,
    memory: Annotated[str | None, typer.Option(help="Memory per replica: 1Gi.")] = None,
    gpus: Annotated[str | None, typer.Option(help="GPUs per replica, or a share: 0.25.")] = None,
    max_batch_size: Annotated[int | None, typer.Option(min=1)] = None,
    max_wait_ms: Annotated[float | None, typer.Option(min=0)] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Deploy a model as an endpoint, or roll an endpoint to new versions (replica by replica).

    Example: aip serve deploy iris --model models:/iris@production --max-replicas 4
    """
    import yaml

    from aip.cli.specs import build_endpoint_spec

    base: dict[str, Any] = yaml.safe_load(file.read_text()) if file else {}
    spec = build_endpoint_spec(base, name=name, model=model, canary=canary,
                               canary_weight=canary_weight, shadow=shadow,
                               shadow_percent=shadow_percent, min_replicas=min_replicas,
                               max_replicas=max_replicas, target_in_flight=target_in_flight,
                               target_qps=target_qps, scale_in_cooldown=scale_in_cooldown,
                               scale_to_zero_after=scale_to_zero_after, cpus=cpus,
                               memory=memory, gpus=gpus, max_batch_size=max_batch_size,
                               max_wait_ms=max_wait_ms)
    with open_client(ctx) as client:
        deployed = client.deploy_endpoint(spec)
    if output is OutputFormat.json:
        emit_json(deployed)
        return
    endpoint = deployed["endpoint"]
    stdout().print(f"endpoint {endpoint['name']} revision {endpoint['revision']}: "
                   f"{endpoint['url']}")
    if deployed.get("token"):
        stdout().print(f"token: {deployed['token']}")
        note("keep the token: it is not shown again (`aip endpoint token NAME` makes a new one)")


@app.command("list")
def list_endpoints(ctx: typer.Context, output: OutputOption = OutputFormat.table) -> None:
    """Endpoints, their versions and replicas."""
    with open_client(ctx) as client:
        items = client.list_endpoints()
    if output is OutputFormat.json:
        emit_json({"items": items})
    elif not items:
        note("no endpoints yet: `aip serve deploy NAME --model models:/NAME@production`")
    else:
        table = new_table("NAME", "STATE", "VERSIONS", "REPLICAS", "URL", "REASON",
                          wrap=("VERSIONS", "REASON"))
        for item in items:
            add_row(table, item["name"], styled_state(item["state"]), _versions(item),
                    _replicas(item), item["url"], item.get("reason") or "")
        stdout().print(table)


@app.command("get")
def get(ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="NAME")],
        output: OutputOption = OutputFormat.table) -> None:
    """One endpoint: versions and weights, replicas and their state, the last scaling reason."""
    with open_client(ctx) as client:
        item = client.get_endpoint(name)
    if output is OutputFormat.json:
        emit_json(item)
        return
    from rich.console import Group
    from rich.text import Text

    facts = new_grid()
    for label, value in (("Name", item["name"]), ("State", styled_state(item["state"])),
                         ("Revision", str(item["revision"])), ("URL", item["url"]),
                         ("Versions", _versions(item)), ("Replicas", _replicas(item)),
                         ("Scaling", item.get("reason") or "-")):
        add_row(facts, label, value)
    table = new_table("REPLICA JOB", "VERSION", "STATE", "URL")
    for replica in item["replica_list"]:
        add_row(table, replica["job_id"], replica["version"], replica["state"],
                replica.get("url") or "-")
    stdout().print(Group(facts, Text(""), table))


@app.command("invoke")
def invoke(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME")],
    data: Annotated[str, typer.Option(
        "--data", "-d", help='JSON: {"instances": [[...]]} or {"inputs": [...]} (OIP v2); '
        "@FILE reads it from a file.")],
    token: Annotated[str | None, typer.Option(
        help="The endpoint's token (default: the platform token).")] = None,
) -> None:
    """Send one request through the router and print the answer."""
    from aip.errors import InvalidSpec

    text = Path(data[1:]).read_text() if data.startswith("@") else data
    try:
        payload = json.loads(text)
    except ValueError as exc:
        raise InvalidSpec(f"--data is not JSON: {exc}", fields={"--data": str(exc)}) from None
    if not isinstance(payload, dict):
        raise InvalidSpec('--data must be a JSON object: {"instances": [...]}',
                          fields={"--data": "not an object"})
    with open_client(ctx) as client:
        emit_json(client.invoke_endpoint(name, payload, token=token))


@app.command("delete")
def delete(ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="NAME")]) -> None:
    """Stop the endpoint's replicas and remove it."""
    with open_client(ctx) as client:
        client.delete_endpoint(name)
    note(f"endpoint {name} is being deleted")


@app.command("token")
def token(ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="NAME")]) -> None:
    """Make a new token for the endpoint (the old one stops working)."""
    with open_client(ctx) as client:
        stdout().print(client.rotate_endpoint_token(name))


def _versions(item: dict[str, Any]) -> str:
    parts = []
    for version in item["versions"]:
        share = (f"shadow {version['shadow_percent']:g}%" if version["shadow_percent"]
                 else f"{version['weight']:g}%")
        parts.append(f"{version['label']} ({share}, {version['ready_replicas']} ready)")
    return ", ".join(parts)


def _replicas(item: dict[str, Any]) -> str:
    replicas = item["replica_list"]
    ready = sum(1 for r in replicas if r["state"] == "ready")
    return f"{ready} ready of {len(replicas)}, {item['replicas']} wanted"
