"""``aip env``: build, list and delete the per-job Python environments cached on this machine.

    aip env build -r numpy==1.26.4 -r mxnet==1.9.1     # builds once, then finds it
    aip env build --file requirements.txt --python /opt/py39/bin/python
    aip env build --spec job.yaml                       # the job's environment: section
    aip env list
    aip env remove 3f2a9c1e                             # a unique key prefix is enough
    aip env prune --older-than 30d

The cache is ``$AIP_ENV_CACHE``, else ``$AIP_HOME/envs``; see ``aip.runtime.envs``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

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
    stderr,
    stdout,
)

if TYPE_CHECKING:
    from aip.spec import EnvironmentSpec

app = typer.Typer(help="Build and manage per-job Python environments (cached by content).",
                  no_args_is_help=True)

# Lines kept on screen after the spinner moves on: what was installed, and our own steps.
_MILESTONES = re.compile(r"^(Successfully installed|building environment|environment \S+ "
                         r"(ready|was built)|using cached|waiting for|removing)")
_FAILURE_TAIL_LINES = 15


@app.command("build")
def build(
    requirements: Annotated[list[str] | None, typer.Option(
        "--requirement", "-r", metavar="REQ",
        help="A pip requirement such as numpy==1.26.4; repeat for more.")] = None,
    file: Annotated[Path | None, typer.Option(
        "--file", "-f", metavar="FILE", dir_okay=False,
        help="A requirements.txt: one requirement a line, # comments (no pip options).")] = None,
    spec_file: Annotated[Path | None, typer.Option(
        "--spec", metavar="FILE", dir_okay=False,
        help="A job spec: build its environment: section.")] = None,
    python: Annotated[str | None, typer.Option(
        "--python", metavar="PATH",
        help="Base interpreter (default: the one aip runs on); alone, it is only checked.")
    ] = None,
    system_site_packages: Annotated[bool, typer.Option(
        "--system-site-packages", help="Let the environment see the base interpreter's "
        "packages.")] = False,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Build the environment (or find it already built) and print its key and interpreter."""
    from aip.runtime.envs import environment_key, find_environment

    spec = _spec_from_flags(requirements or [], file, spec_file, python, system_site_packages)
    cached = find_environment(spec) is not None
    interpreter = _ensure_with_progress(spec, quiet=output is OutputFormat.json)
    key = environment_key(spec) if spec.requirements else None
    result = {"key": key, "python": str(interpreter), "cached": cached,
              "requirements": list(spec.requirements)}
    if output is OutputFormat.json:
        emit_json(result)
        return
    grid = new_grid()
    grid.add_row("Key", key or "- (an existing interpreter: nothing to build)")
    grid.add_row("Python", str(interpreter))
    if spec.requirements:
        grid.add_row("Requirements", " ".join(spec.requirements))
        grid.add_row("Built", "earlier (cached)" if cached else "now")
    stdout().print(grid)


@app.command("list")
def list_command(output: OutputOption = OutputFormat.table) -> None:
    """List the environments built on this machine, most recently used first."""
    from aip.runtime.envs import default_cache_dir, list_environments

    items = list_environments()
    if output is OutputFormat.json:
        emit_json({"items": [info.to_json() for info in items]})
        return
    if not items:
        note(f"no environments in {default_cache_dir()}: build one with `aip env build -r REQ`")
        return
    wide = output is OutputFormat.wide
    table = new_table("KEY", "REQUIREMENTS", "PYTHON", "SIZE", "LAST USED",
                      *(["CREATED", "PATH"] if wide else []), wrap=("REQUIREMENTS",))
    for info in items:
        add_row(table, info.key, " ".join(info.requirements) or "-", info.python_version,
                human_bytes(info.size_bytes), age(info.last_used.isoformat()),
                *([age(info.created.isoformat()), str(info.path)] if wide else []))
    stdout().print(table)


@app.command("remove")
def remove(key: Annotated[str, typer.Argument(
        metavar="KEY", help="The key from `aip env list`, or a unique prefix of it.")]) -> None:
    """Delete one environment."""
    from aip.runtime.envs import remove_environment

    info = remove_environment(None, key)
    stdout().print(f"removed environment {info.key} ({human_bytes(info.size_bytes)})")


@app.command("prune")
def prune(
    older_than: Annotated[str, typer.Option(
        "--older-than", metavar="DURATION",
        help="Remove environments no job has used for this long: 30d, 12h, 90m.")],
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Only show what would be removed.")] = False,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Delete environments unused for a while, and leftovers of interrupted builds."""
    from aip.cli.specs import InvalidFlags
    from aip.runtime.envs import prune_environments
    from aip.spec.quantities import parse_duration

    try:
        seconds = parse_duration(older_than)
    except ValueError as exc:
        raise InvalidFlags(f"--older-than: {exc}", fields={"--older-than": str(exc)}) from None
    removed = prune_environments(None, seconds, dry_run=dry_run)
    if output is OutputFormat.json:
        emit_json({"items": [info.to_json() for info in removed], "dry_run": dry_run})
        return
    if not removed:
        note(f"no environment has gone unused for {older_than}")
        return
    verb = "would remove" if dry_run else "removed"
    for info in removed:
        stdout().print(f"{verb} {info.key}  {' '.join(info.requirements)}  "
                       f"(last used {age(info.last_used.isoformat())} ago)")
    freed = sum(info.size_bytes or 0 for info in removed)
    stdout().print(f"{verb} {len(removed)} environment{'s' if len(removed) != 1 else ''}, "
                   f"{human_bytes(freed)}")


def read_requirements_file(path: Path) -> list[str]:
    """The requirements in a requirements.txt: blank lines and ``#`` comments skipped,
    backslash continuations joined; pip options (``-r``, ``-e``, ``--index-url``) refused."""
    from aip.cli.specs import InvalidFlags

    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidFlags(f"--file: cannot read {path}: {exc}",
                           fields={"--file": f"cannot read {path}"}) from None
    found: list[str] = []
    pending = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = pending + re.sub(r"(^|\s)#.*$", "", raw).strip()
        if line.endswith("\\"):
            pending = line[:-1]
            continue
        pending = ""
        if not line:
            continue
        if line.startswith("-"):
            option = line.split()[0]
            problem = (f"{path}:{number}: pip options such as {option} are not accepted; "
                       "list one requirement a line")
            raise InvalidFlags(f"--file: {problem}", fields={"--file": problem})
        found.append(line)
    return found


def _spec_from_flags(requirements: list[str], file: Path | None, spec_file: Path | None,
                     python: str | None, system_site_packages: bool) -> EnvironmentSpec:
    from aip.cli.specs import InvalidFlags
    from aip.errors import InvalidSpec
    from aip.spec import EnvironmentSpec, validate

    if spec_file is not None:
        if requirements or file or python or system_site_packages:
            raise InvalidFlags("--spec takes the whole environment from the job spec: leave "
                               "out -r, --file, --python and --system-site-packages")
        return _spec_from_job_file(spec_file)
    lines = [*requirements, *(read_requirements_file(file) if file else [])]
    if not lines and not python:
        raise InvalidFlags("nothing to build: give requirements (-r numpy==1.26.4, --file "
                           "requirements.txt), a job spec (--spec job.yaml), or --python PATH")
    data = {"requirements": lines, "python": python,
            "system_site_packages": system_site_packages}
    try:
        return validate(data, EnvironmentSpec, source="environment")
    except InvalidSpec as exc:
        raise InvalidFlags(exc.message, fields=exc.fields) from None


def _spec_from_job_file(path: Path) -> EnvironmentSpec:
    from aip.errors import InvalidSpec
    from aip.spec import JobSpec, load_yaml

    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidSpec(f"cannot read {path}: {exc}") from None
    job = load_yaml(text, JobSpec, source=str(path))
    if job.environment is None:
        raise InvalidSpec(f"{path}: the job has no environment: section to build; add "
                          "environment: {requirements: [...]} or use -r REQ",
                          fields={"environment": "missing"})
    return job.environment


def _ensure_with_progress(spec: EnvironmentSpec, *, quiet: bool) -> Path:
    """Run ``ensure_environment`` behind a spinner that shows pip's current line. Without a
    terminal (CI logs), every line is printed instead; on failure pip's last lines are shown."""
    from rich.text import Text

    from aip.runtime.envs import EnvironmentBuildError, ensure_environment

    console = stderr()
    try:
        if quiet:
            return ensure_environment(spec, progress=lambda line: None)
        if not console.is_terminal:
            return ensure_environment(
                spec, progress=lambda line: console.print(Text(line, style="dim")))
        with console.status("preparing the environment", spinner="dots") as status:
            def show(line: str) -> None:
                status.update(Text(_one_line(line, console.width - 4)))
                if _MILESTONES.match(line):
                    console.print(Text(line, style="dim"))

            return ensure_environment(spec, progress=show)
    except EnvironmentBuildError as exc:
        if exc.output and console.is_terminal and not quiet:
            console.print(Text("pip's last lines:", style="bold"))
            for line in [text for text in exc.output if text.strip()][-_FAILURE_TAIL_LINES:]:
                console.print(Text(line, style="dim"))
        raise


def _one_line(line: str, width: int) -> str:
    text = line.strip()
    return text if len(text) <= width else text[: max(width - 1, 1)] + "…"
