"""``aip run``: submit a command as a job straight from the shell, no YAML needed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aip.cli.context import open_client
from aip.cli.output import OutputFormat, OutputOption

_RESOURCES = "Resources (per replica)"
_DISTRIBUTED = "Distributed training"


def run(
    ctx: typer.Context,
    command: Annotated[list[str] | None, typer.Argument(
        metavar="COMMAND", show_default=False,
        help="The program and its arguments, best after `--` (an argv list, no shell).")
    ] = None,
    name: Annotated[str | None, typer.Option(
        help="Job name (default: from the command, e.g. train for python train.py).")] = None,
    queue: Annotated[str | None, typer.Option(
        "--queue", "-q", help="Queue to submit to (default: default).")] = None,
    priority: Annotated[int | None, typer.Option(
        help="Higher runs first, -1000..1000 (default: 0).")] = None,
    cpus: Annotated[str | None, typer.Option(
        help="CPU cores: 2, 0.5 or 500m (default: 1).", rich_help_panel=_RESOURCES)] = None,
    memory: Annotated[str | None, typer.Option(
        help="Memory: 512Mi, 4Gi (default: 512Mi).", rich_help_panel=_RESOURCES)] = None,
    gpus: Annotated[str | None, typer.Option(
        help="Whole GPUs (1, 8) or a share of one (0.25).", rich_help_panel=_RESOURCES)
    ] = None,
    gpu_type: Annotated[list[str] | None, typer.Option(
        metavar="TYPE", rich_help_panel=_RESOURCES,
        help="Allowed GPU models: T4, or T4|V100M32 (repeatable).")] = None,
    accelerator: Annotated[list[str] | None, typer.Option(
        metavar="KIND=COUNT", rich_help_panel=_RESOURCES,
        help="Declared accelerators, e.g. tpu=4 (repeatable).")] = None,
    replicas: Annotated[int, typer.Option(
        min=1, help="Identical worker replicas, started all together.")] = 1,
    framework: Annotated[str | None, typer.Option(
        metavar="NAME", rich_help_panel=_DISTRIBUTED,
        help="Wire the rendezvous of pytorch, tensorflow, jax, mindspore, mxnet or mpi.")
    ] = None,
    nproc_per_replica: Annotated[int | None, typer.Option(
        min=1, rich_help_panel=_DISTRIBUTED,
        help="pytorch: processes per replica under torchrun; mpi: slots per replica.")] = None,
    topology: Annotated[str | None, typer.Option(
        metavar="none|preferred|required", rich_help_panel=_DISTRIBUTED,
        help="Keep the replicas within one RDMA domain (aip.io/rdma-domain).")] = None,
    restart_policy: Annotated[str | None, typer.Option(
        metavar="gang|replica", rich_help_panel=_DISTRIBUTED,
        help="On a failure, restart the whole gang (default) or the failed replica.")] = None,
    hang_timeout: Annotated[str | None, typer.Option(
        metavar="DURATION", rich_help_panel=_DISTRIBUTED,
        help="Fail a replica with no output and no heartbeat for this long: 10m.")] = None,
    requirement: Annotated[list[str] | None, typer.Option(
        "--requirement", "-r", metavar="REQ",
        help="pip requirement of a per-job environment, e.g. numpy==1.26.4 (repeatable).")
    ] = None,
    python: Annotated[str | None, typer.Option(
        metavar="PATH", help="Run with this existing interpreter (or build the environment "
        "from it).")] = None,
    env: Annotated[list[str] | None, typer.Option(
        "--env", "-e", metavar="KEY=VALUE", help="Environment variable (repeatable).")] = None,
    label: Annotated[list[str] | None, typer.Option(
        metavar="KEY=VALUE", help="Label to filter by later (repeatable).")] = None,
    max_retries: Annotated[int | None, typer.Option(
        "--max-restarts", "--max-retries",
        help="Times to restart a failed job (default: 0).")] = None,
    timeout: Annotated[str | None, typer.Option(
        metavar="DURATION", help="Fail the job after running this long: 90s, 30m, 2h.")
    ] = None,
    workdir: Annotated[Path | None, typer.Option(
        metavar="DIR", help="Directory the replicas start in (default: this one).")] = None,
    follow: Annotated[bool, typer.Option(
        "--follow", "-f", help="Stream the logs; exit with the job's exit code.")] = False,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Run a command as a job.

    Example: aip run --gpus 0.25 --gpu-type T4 -f -- python train.py --epochs 3

    Distributed: aip run --framework pytorch --replicas 2 --cpus 1 -- python train.py
    """
    from aip.cli.jobs import announce, follow_job
    from aip.cli.specs import RunRequest, build_job_spec

    spec = build_job_spec(RunRequest(
        command=command or [], name=name, queue=queue, priority=priority, cpus=cpus,
        memory=memory, gpus=gpus, gpu_types=gpu_type or [], accelerators=accelerator or [],
        replicas=replicas, env=env or [], labels=label or [], max_retries=max_retries,
        timeout=timeout, workdir=str((workdir or Path.cwd()).resolve()),
        framework=framework, nproc_per_replica=nproc_per_replica, topology=topology,
        restart_policy=restart_policy, hang_timeout=hang_timeout,
        requirements=requirement or [], python=python,
    ))
    with open_client(ctx) as client:
        job = client.submit_job(spec)
        announce(job, output, following=follow)
        if follow:
            raise typer.Exit(follow_job(client, job["id"], passthrough=True))
