"""``aip job ...``: submit a YAML spec, list, inspect, follow, wait for and cancel jobs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aip.cli.context import open_client
from aip.cli.output import OutputFormat, OutputOption
from aip.control.states import JobState

if TYPE_CHECKING:
    from aip.client import Client

LIST_PAGE_SIZE = 200

app = typer.Typer(help="Submit, inspect and control jobs.", no_args_is_help=True)


JobId = Annotated[str, typer.Argument(metavar="ID", help="The job id (see `aip job list`).")]
JobRef = Annotated[str, typer.Argument(
    metavar="JOB", help="The job id, or a job name (its newest run).")]


@app.command("submit")
def submit(
    ctx: typer.Context,
    file: Annotated[Path, typer.Option(
        "--file", "-f", exists=True, dir_okay=False, metavar="FILE",
        help="The job spec in YAML.")],
    follow: Annotated[bool, typer.Option(
        "--follow", help="Stream the logs until the job ends; exit with its result.")] = False,
    workdir: Annotated[Path | None, typer.Option(
        metavar="DIR", help="Start the replicas in this directory (e.g. `.`), unless the spec "
        "sets working_dir; default: the job's output directory.")] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Submit a job spec file (checked here first, with line numbers)."""
    import json

    from aip.errors import InvalidSpec
    from aip.spec import JobSpec, load_yaml

    try:
        text = file.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidSpec(f"cannot read {file}: {exc}") from None
    spec = load_yaml(text, JobSpec, source=str(file))
    if workdir is not None and spec.working_dir is None:
        # appended, so the server's errors still name the file's own line numbers
        text = f"{text.rstrip()}\nworking_dir: {json.dumps(str(workdir.resolve()))}\n"
    with open_client(ctx) as client:
        job = client.submit_job_yaml(text)
        announce(job, output, following=follow)
        if follow:
            raise typer.Exit(follow_job(client, job["id"]))


@app.command("list")
def list_jobs(
    ctx: typer.Context,
    state: Annotated[list[JobState] | None, typer.Option(
        "--state", "-s", case_sensitive=False, help="Only jobs in this state (repeatable).")
    ] = None,
    queue: Annotated[str | None, typer.Option("--queue", "-q", help="Only this queue.")] = None,
    name: Annotated[str | None, typer.Option(help="Only names containing this text.")] = None,
    label: Annotated[list[str] | None, typer.Option(
        metavar="KEY=VALUE", help="Only jobs with this label (repeatable).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many jobs, newest first.")] = 50,
    all_jobs: Annotated[bool, typer.Option(
        "--all", "-A", help="Every matching job, not just the newest --limit.")] = False,
    output: OutputOption = OutputFormat.table,
) -> None:
    """List jobs, newest first."""
    from aip.cli.specs import parse_pairs

    filters: dict[str, Any] = {
        "state": [s.value for s in state or []], "queue": queue, "name": name,
        "labels": parse_pairs(label or [], "--label"),
    }
    with open_client(ctx) as client:
        page = (_all_pages(client, filters) if all_jobs
                else client.list_jobs(**filters, limit=limit))
    if output is OutputFormat.json:
        from aip.cli.output import emit_json

        emit_json(page)
        return
    _print_jobs_page(page, wide=output is OutputFormat.wide)


@app.command("get")
def get(ctx: typer.Context, job_id: JobId, output: OutputOption = OutputFormat.table) -> None:
    """Show one job: state and why, timing, and where each replica runs."""
    from aip.cli.job_views import job_detail
    from aip.cli.output import emit_json, stdout

    with open_client(ctx) as client:
        job = client.get_job(job_id)
    if output is OutputFormat.json:
        emit_json(job)
    else:
        stdout().print(job_detail(job))


@app.command("logs")
def logs(
    ctx: typer.Context,
    job_id: JobId,
    follow: Annotated[bool, typer.Option(
        "--follow", "-f", help="Keep streaming until the job ends; exit with its result.")
    ] = False,
    replica: Annotated[str | None, typer.Option(
        metavar="NAME", help="One replica, e.g. worker-0 (default: all).")] = None,
    tail: Annotated[int | None, typer.Option(min=0, help="Only the last N lines.")] = None,
) -> None:
    """Print a job's logs (all replicas, each line prefixed with its replica)."""
    with open_client(ctx) as client:
        if follow:
            raise typer.Exit(follow_job(client, job_id, replica=replica, tail=tail))
        text = client.job_logs(job_id, replica=replica, tail=tail)
    sys.stdout.write(text)
    if text and not text.endswith("\n"):
        sys.stdout.write("\n")


@app.command("cancel")
def cancel(ctx: typer.Context, job_id: JobId, output: OutputOption = OutputFormat.table) -> None:
    """Cancel a job: its replicas are stopped and it ends CANCELLED."""
    from aip.cli.output import emit_json, stdout

    with open_client(ctx) as client:
        job = client.cancel_job(job_id)
    if output is OutputFormat.json:
        emit_json(job)
    else:
        stdout().print(f"job {job['id']}: cancel requested (state {job['state']})",
                       markup=False)


@app.command("events")
def events(ctx: typer.Context, job_id: JobId, output: OutputOption = OutputFormat.table) -> None:
    """What happened to a job: admitted, placed, preempted, retried, finished."""
    from aip.cli.job_views import events_table
    from aip.cli.output import emit_json, stdout

    with open_client(ctx) as client:
        items = client.job_events(job_id)
    if output is OutputFormat.json:
        emit_json({"items": items})
    else:
        stdout().print(events_table(items))


@app.command("wait")
def wait(
    ctx: typer.Context,
    job_id: JobId,
    timeout: Annotated[str | None, typer.Option(
        metavar="DURATION", help="Give up after this long (90s, 30m, 2h); exit code 1.")
    ] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Wait until a job ends; exit 0 if it succeeded, 1 otherwise."""
    from aip.cli.job_views import final_line
    from aip.cli.output import emit_json, note, stderr

    seconds = _parse_timeout(timeout)
    with open_client(ctx) as client, stderr().status(f"waiting for job {job_id} ..."):
        job = client.wait_job(job_id, timeout=seconds)
    if output is OutputFormat.json:
        emit_json(job)
    else:
        note(*final_line(job))
    raise typer.Exit(exit_status(job))


def announce(job: dict[str, Any], output: OutputFormat, *, following: bool) -> None:
    """After a submit: the id on stdout (or the whole job as JSON), a hint on stderr."""
    from aip.cli.output import emit_json, note

    if output is OutputFormat.json:
        emit_json(job)
    else:
        sys.stdout.write(job["id"] + "\n")
        sys.stdout.flush()
    if not following:
        note(f"submitted job {job['id']} to queue {job.get('queue', 'default')}; "
             f"follow it with `aip job logs {job['id']} -f`")


def follow_job(
    client: Client, job_id: str, *, replica: str | None = None, tail: int | None = None,
    passthrough: bool = False,
) -> int:
    """Stream a job's logs to stdout until it ends; print the outcome; return the exit code."""
    from aip.cli.job_views import final_line
    from aip.cli.output import note

    try:
        for line in client.follow_logs(job_id, replica=replica, tail=tail):
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        job = client.wait_job(job_id)
    except KeyboardInterrupt:
        note(f"stopped following; job {job_id} keeps running "
             f"(`aip job cancel {job_id}` stops it)", style="yellow")
        return 130
    note(*final_line(job))
    return exit_status(job, passthrough=passthrough)


def exit_status(job: dict[str, Any], *, passthrough: bool = False) -> int:
    """0 if the job succeeded; else 1, or with ``passthrough`` its own exit code (1-255)."""
    if job["state"] == "SUCCEEDED":
        return 0
    code = job.get("exit_code")
    if passthrough and isinstance(code, int) and 0 < code < 256:
        return code
    return 1


def _all_pages(client: Client, filters: dict[str, Any]) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    while True:
        page = client.list_jobs(**filters, limit=LIST_PAGE_SIZE, offset=len(items))
        items.extend(page["items"])
        if not page["items"] or len(items) >= page["total"]:
            return {"items": items, "total": page["total"], "limit": len(items), "offset": 0}


def _print_jobs_page(page: dict[str, Any], *, wide: bool) -> None:
    from aip.cli.job_views import jobs_table
    from aip.cli.output import note, stdout

    items = page["items"]
    if not items:
        note("no jobs match" if page.get("total") == 0 else "no jobs on this page")
        return
    stdout().print(jobs_table(items, wide=wide))
    if page["total"] > len(items):
        note(f"showing {len(items)} of {page['total']} jobs; --limit N or --all for more")


def _parse_timeout(text: str | None) -> float | None:
    if text is None:
        return None
    from aip.spec.quantities import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--timeout") from None


# -- tracking: what a job logged (aip.log_metrics, aip.log_artifact) ----------------------


@app.command("metrics")
def metrics(
    ctx: typer.Context,
    job_id: JobRef,
    key: Annotated[str | None, typer.Option(
        "--key", "-k", metavar="KEY", help="Only this metric, with every point listed.")
    ] = None,
    replica: Annotated[int | None, typer.Option(
        metavar="RANK", min=0, help="Only the replica of this global rank (its AIP_RANK).")
    ] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Show what a job logged with aip.log_metrics: per metric the steps, the last, lowest
    and highest value, and a sparkline of the trend."""
    from aip.cli.output import emit_json, note, stdout
    from aip.cli.tracking_views import metrics_table, points_table

    with open_client(ctx) as client:
        job_id = client.resolve_job(job_id)["id"]
        points = client.job_metrics(job_id, key=key, replica=replica)
    if output is OutputFormat.json:
        emit_json({"items": points})
        return
    if not points:
        what = f"metric {key!r}" if key else "metrics"
        note(f"job {job_id} has logged no {what} yet (aip.log_metrics in the job logs them)")
        return
    console = stdout()
    console.print(metrics_table(points))
    if key is not None or output is OutputFormat.wide:
        console.print()
        console.print(points_table(points))


@app.command("artifacts")
def artifacts(
    ctx: typer.Context,
    job_id: JobRef,
    prefix: Annotated[str | None, typer.Option(
        metavar="PATH", help="Only this artifact, or those under this directory.")] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """List the files a job stored with aip.log_artifact."""
    from aip.cli.output import emit_json, note, stdout
    from aip.cli.tracking_views import artifacts_table

    with open_client(ctx) as client:
        job_id = client.resolve_job(job_id)["id"]
        items = client.job_artifacts(job_id, prefix=prefix)
    if output is OutputFormat.json:
        emit_json({"items": items})
    elif not items:
        note(f"job {job_id} has no artifacts" + (f" under {prefix!r}" if prefix else ""))
    else:
        stdout().print(artifacts_table(items))


@app.command("download")
def download(
    ctx: typer.Context,
    job_id: JobRef,
    path: Annotated[str, typer.Argument(
        metavar="PATH", help="An artifact (model.pt) or a directory of them (checkpoints).")],
    output_dir: Annotated[Path, typer.Option(
        "--output-dir", "-o", metavar="DIR", file_okay=False,
        help="Where to put it (default: here); a directory keeps its own name below.")
    ] = Path("."),
) -> None:
    """Download a job's artifact, or a directory of them, checking each file's sha256.
    Prints the path of every file written."""
    from aip.cli.output import human_bytes, note
    from aip.cli.progress import transfer_progress
    from aip.cli.tracking_views import download_targets
    from aip.errors import NotFound

    with open_client(ctx) as client:
        job_id = client.resolve_job(job_id)["id"]
        items = client.job_artifacts(job_id, prefix=path.strip("/"))
        if not items:
            raise NotFound(f"job {job_id} has no artifact {path!r}: list them with "
                           f"`aip job artifacts {job_id}`", fields={"path": "no such artifact"})
        targets = download_targets(items, path, output_dir)
        total = sum(int(item["size"]) for item in items)
        with transfer_progress(total, description=path) as advance:
            for item, target in targets:
                client.download_artifact(job_id, item["path"], target, progress=advance)
                sys.stdout.write(f"{target}\n")
                sys.stdout.flush()
    note(f"downloaded {len(targets)} file(s), {human_bytes(total)}B, sha256 checked",
         style="green")
