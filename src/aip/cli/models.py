"""``aip model ...``: register models, list and inspect them, move aliases, download versions.

    aip model register fraud --path model.onnx                   # flavor, signature found
    aip model register fraud --path clf.joblib --flavor sklearn  # unpickled here, not remotely
    aip model register fraud --from-job JOB --artifact model.onnx  # lineage: job, metrics
    aip model list
    aip model get fraud            # versions and aliases;  fraud/3 or fraud@production: one version
    aip model alias fraud production 3
    aip model download models:/fraud@production --dest ./fraud
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from aip.cli.context import open_client
from aip.cli.output import (
    OutputFormat,
    OutputOption,
    add_row,
    age,
    emit_json,
    human_bytes,
    new_grid,
    new_table,
    note,
    stdout,
)

app = typer.Typer(help="Register, inspect, alias and download models.", no_args_is_help=True)

ModelArgument = Annotated[str, typer.Argument(
    metavar="MODEL", help="NAME, NAME/VERSION, NAME@ALIAS or a models:/ URI.")]


@app.command("register")
def register(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The model's name.")],
    path: Annotated[Path | None, typer.Option(
        "--path", "-p", metavar="FILE_OR_DIR", help="The model file or directory to upload.")
    ] = None,
    flavor: Annotated[str | None, typer.Option(
        help="onnx, pytorch, sklearn, xgboost, lightgbm, tensorflow or python; default: "
        "detected from the files.")] = None,
    from_job: Annotated[str | None, typer.Option(
        "--from-job", metavar="JOB", help="The job (id, or name: its newest run) that made the "
        "model: with --artifact, register its artifact; with --path, record it as the "
        "version's source.")] = None,
    artifact: Annotated[str | None, typer.Option(
        metavar="PATH", help="The artifact of --from-job to register (a file or directory).")
    ] = None,
    description: Annotated[str | None, typer.Option(help="The model's description.")] = None,
    signature: Annotated[str | None, typer.Option(
        metavar="FILE_OR_JSON", help='The signature, {"inputs": [...], "outputs": [...]}, '
        "instead of inferring it.")] = None,
    python_class: Annotated[str | None, typer.Option(
        metavar="MODULE:CLASS", help="python flavor: the class with load() and predict().")
    ] = None,
    example_input: Annotated[Path | None, typer.Option(
        exists=True, dir_okay=False, metavar="FILE.npy",
        help="An example input (.npy, or .npz for several) to infer a TorchScript "
        "signature.")] = None,
    infer: Annotated[bool, typer.Option(
        "--infer/--no-infer", help="Infer the signature by loading the model here.")] = True,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Register the next version of a model. Loading a pickle runs its code: the signature
    is inferred here, in this process, and never by the server."""
    from aip.cli.specs import InvalidFlags

    given_signature = _read_signature(signature) if signature else None
    if artifact is not None:
        if from_job is None or path is not None:
            raise InvalidFlags("--artifact goes with --from-job JOB and without --path",
                               fields={"--artifact": "needs --from-job, not --path"})
        with open_client(ctx) as client:
            version = client.register_model_from_job(
                name, client.resolve_job(from_job)["id"], artifact, flavor,
                signature=given_signature, python_class=python_class, description=description)
    else:
        if path is None:
            raise InvalidFlags("give --path FILE_OR_DIR, or --from-job JOB --artifact PATH",
                               fields={"--path": "required"})
        from aip.registry.flavors import prepare_model

        prepared = prepare_model(path, flavor, signature=given_signature,
                                 python_class=python_class, infer=infer,
                                 example_input=_example(example_input))
        for line in prepared.notes:
            note(line, style="yellow")
        from aip.cli.progress import transfer_progress
        from aip.registry.transfer import upload_archive

        size = upload_archive(prepared).size
        with open_client(ctx) as client, transfer_progress(
                size, f"uploading {name}", enabled=output is not OutputFormat.json) as advance:
            source = client.resolve_job(from_job)["id"] if from_job else None
            version = client.upload_model(name, prepared, description=description,
                                          source_job=source, progress=advance)
    if output is OutputFormat.json:
        emit_json(version)
        return
    stdout().print(f"registered {version['uri']} ({version['flavor']}, "
                   f"{human_bytes(version['size'])}B, {_signature_summary(version)})",
                   style="green", markup=False)


@app.command("list")
def list_models(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option(help="Only names containing this text.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many models.")] = 200,
    output: OutputOption = OutputFormat.table,
) -> None:
    """List models by name: latest version, aliases, last registration."""
    with open_client(ctx) as client:
        page = client.list_models(name=name, limit=limit)
    if output is OutputFormat.json:
        emit_json(page)
        return
    if not page["items"]:
        note("no models yet: `aip model register NAME --path FILE` adds one")
        return
    table = new_table("NAME", "LATEST", "VERSIONS", "ALIASES", "UPDATED", "DESCRIPTION",
                      wrap=("DESCRIPTION",))
    for model in page["items"]:
        add_row(table, model["name"], _number(model["latest_version"]),
                str(model["version_count"]), _aliases(model["aliases"]),
                age(model["updated_at"]), model.get("description") or "")
    stdout().print(table)
    if page["total"] > len(page["items"]):
        note(f"{len(page['items'])} of {page['total']} models; use --limit or --name")


@app.command("get")
def get(
    ctx: typer.Context,
    model: ModelArgument,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Show a model (its versions and aliases), or one version: signature, files, lineage."""
    from aip.registry.uris import parse_model_uri

    ref = parse_model_uri(model, field="MODEL", scheme_required=False)
    whole_model = ref.is_latest and not model.startswith("models:") and "/" not in model
    with open_client(ctx) as client:
        data = client.get_model(ref.name) if whole_model else client.resolve_model(str(ref))
    if output is OutputFormat.json:
        emit_json(data)
    else:
        stdout().print(_model_detail(data) if whole_model else _version_detail(data))


@app.command("alias")
def alias(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME")],
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="production, staging ...")],
    version: Annotated[int | None, typer.Argument(
        metavar="VERSION", min=1, help="The version it points to.", show_default=False)
    ] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the alias.")] = False,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Point an alias at a version (models:/NAME@ALIAS then means it), or --delete it."""
    from aip.cli.specs import InvalidFlags

    if delete == (version is not None):
        raise InvalidFlags("give a VERSION to point the alias at, or --delete",
                           fields={"VERSION": "give it, or --delete"})
    with open_client(ctx) as client:
        if delete:
            client.delete_alias(name, alias_name)
            result: dict[str, Any] = {"name": name, "alias": alias_name, "deleted": True}
        else:
            assert version is not None
            result = client.set_alias(name, alias_name, version)
    if output is OutputFormat.json:
        emit_json(result)
    elif delete:
        stdout().print(f"deleted alias {name}@{alias_name}", style="green", markup=False)
    else:
        stdout().print(f"{result['uri']} -> version {result['version']}", style="green",
                       markup=False)


@app.command("delete")
def delete(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME")],
    version: Annotated[int | None, typer.Option(
        "--version", "-v", min=1, help="Remove only this version (default: the whole model).",
        show_default=False)] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Remove a model version and its files, or a whole model with --yes. Refused while an
    alias points at the version, an endpoint serves it or a replica runs it."""
    from aip.cli.specs import InvalidFlags

    if version is None and not yes:
        raise InvalidFlags(f"removing model {name} removes every version and its files: "
                           "add --yes, or give --version N", fields={"--yes": "required"})
    with open_client(ctx) as client:
        result = client.delete_model(name, version)
    if output is OutputFormat.json:
        emit_json(result)
    elif version is not None:
        stdout().print(f"removed {name} version {version}", style="green", markup=False)
    else:
        stdout().print(f"removed model {name} ({result['removed_versions']} versions)",
                       style="green", markup=False)


@app.command("download")
def download(
    ctx: typer.Context,
    model: ModelArgument,
    dest: Annotated[Path, typer.Option(
        "--dest", "-d", metavar="DIR", help="A new (or empty) directory for the files.")],
    output: OutputOption = OutputFormat.table,
) -> None:
    """Download a version's directory (files and aip-model.json), each file checked against
    the sha256 the registry recorded."""
    from aip.cli.progress import transfer_progress
    from aip.registry.uris import parse_model_uri

    ref = parse_model_uri(model, field="MODEL", scheme_required=False)
    with open_client(ctx) as client:
        version = client.resolve_model(str(ref))
        with transfer_progress(int(version["size"]), version["uri"],
                               enabled=output is not OutputFormat.json) as advance:
            client.download_model(version, dest, progress=advance)
    if output is OutputFormat.json:
        emit_json({**version, "path": str(dest)})
    else:
        stdout().print(f"downloaded {version['uri']} to {dest}", style="green", markup=False)


# -- views --------------------------------------------------------------------------------


def _model_detail(model: dict[str, Any]) -> Any:
    from rich.console import Group
    from rich.text import Text

    facts = new_grid()
    add_row(facts, "Name", model["name"])
    if model.get("description"):
        add_row(facts, "Description", model["description"])
    add_row(facts, "Latest", _number(model["latest_version"]))
    add_row(facts, "Aliases", _aliases(model["aliases"]))
    add_row(facts, "Created", f"{model['created_at']} ({age(model['created_at'])} ago)")
    table = new_table("VERSION", "FLAVOR", "SIZE", "ALIASES", "SOURCE JOB", "STATE", "CREATED")
    for version in model["versions"]:
        add_row(table, str(version["version"]), version.get("flavor") or "-",
                human_bytes(version["size"]), ", ".join(version["aliases"]) or "-",
                version.get("source_job") or "-", version["state"], age(version["created_at"]))
    return Group(facts, Text(""), table)


def _version_detail(version: dict[str, Any]) -> Any:
    from rich.console import Group
    from rich.text import Text

    facts = new_grid()
    add_row(facts, "URI", version["uri"])
    add_row(facts, "Flavor", version.get("flavor") or "-")
    if version.get("manifest") and version["manifest"].get("python_class"):
        add_row(facts, "Class", version["manifest"]["python_class"])
    add_row(facts, "Aliases", ", ".join(version["aliases"]) or "-")
    add_row(facts, "Size", f"{human_bytes(version['size'])}B in {len(version['files'])} files")
    add_row(facts, "SHA-256", version.get("sha256") or "-")
    add_row(facts, "Stored at", version["storage_prefix"])
    if version.get("source_job"):
        source = version["source_job"]
        if version.get("source_artifact"):
            source += f" (artifact {version['source_artifact']})"
        add_row(facts, "Source job", source)
    add_row(facts, "Created", f"{version['created_at']} ({age(version['created_at'])} ago)"
            + (f" by {version['created_by']}" if version.get("created_by") else ""))
    parts: list[Any] = [facts]
    signature = version.get("signature")
    if signature:
        table = new_table("", "NAME", "DTYPE", "SHAPE")
        for direction in ("inputs", "outputs"):
            for tensor in signature.get(direction, []):
                add_row(table, direction[:-1], tensor["name"], tensor["dtype"],
                        _shape(tensor.get("shape", [])))
        parts += [Text(""), Text("Signature", style="bold"), table]
    else:
        parts += [Text(""), Text("No signature (give one with --signature)", style="dim")]
    if version.get("metrics"):
        metrics = new_table("METRIC", "VALUE")
        for key, value in sorted(version["metrics"].items()):
            add_row(metrics, key, "-" if value is None else f"{value:.6g}")
        parts += [Text(""), Text("Metrics of the source job at registration", style="bold"),
                  metrics]
    files = new_table("FILE", "SIZE", "SHA-256")
    for item in version["files"]:
        add_row(files, item["path"], human_bytes(item["size"]), item["sha256"][:16])
    return Group(*parts, Text(""), files)


def _signature_summary(version: dict[str, Any]) -> str:
    signature = version.get("signature")
    if not signature:
        return "no signature"
    inputs, outputs = len(signature["inputs"]), len(signature["outputs"])
    return (f"{inputs} input{'s' * (inputs != 1)}, "
            f"{outputs} output{'s' * (outputs != 1)}")


def _aliases(aliases: dict[str, int]) -> str:
    return ", ".join(f"{alias}={version}" for alias, version in sorted(aliases.items())) or "-"


def _number(value: int | None) -> str:
    return "-" if value is None else str(value)


def _shape(shape: list[int]) -> str:
    return "[" + ", ".join("?" if dim == -1 else str(dim) for dim in shape) + "]"


# -- helpers ------------------------------------------------------------------------------


def _read_signature(value: str) -> dict[str, Any]:
    from aip.errors import InvalidSpec
    from aip.registry.flavors import signature_from_json

    candidate = Path(value)
    text = value
    if not value.lstrip().startswith("{"):
        try:
            text = candidate.read_text()
        except OSError as exc:
            raise InvalidSpec(f"--signature: cannot read {value}: {exc.strerror or exc}",
                              fields={"--signature": "not JSON and no readable file"}) from None
    return signature_from_json(text, "--signature").model_dump()


def _example(path: Path | None) -> Any:
    from aip.cli.arrays import load_arrays

    loaded = load_arrays(path, "--example-input")
    return tuple(loaded.values()) if isinstance(loaded, dict) else loaded
