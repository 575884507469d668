"""``aip``: the root command, its global options and the one place errors are reported.

Exit codes are stable: 0 ok, 1 an ``AIPError`` (or an unexpected failure), 2 a usage error;
commands that follow a job exit with the job's result. Tracebacks appear only with
``AIP_DEBUG=1``.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from aip.cli import endpoints, envs, jobs, models, nodes, optimize, queues, run, server, sim
from aip.cli.context import CliState

USAGE_EXIT_CODE = 2


class AIPGroup(TyperGroup):
    """The root group: turns every error a command raises into a short red message."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # Typer's own control flow and usage errors (exit code 2)
        except Exception as exc:
            if _debug():
                raise
            raise typer.Exit(report_error(exc)) from None


app = typer.Typer(
    cls=AIPGroup,
    name="aip",
    help="AIP: run jobs on your GPUs and accelerators, with queues, quotas and fair scheduling.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_show_locals=False,
)


@app.callback()
def root(
    ctx: typer.Context,
    server_url: Annotated[str | None, typer.Option(
        "--server", metavar="URL", help="API server URL (overrides AIP_SERVER).")] = None,
    token: Annotated[str | None, typer.Option(
        "--token", metavar="TOKEN", help="API token (overrides AIP_TOKEN).")] = None,
    version: Annotated[bool, typer.Option(
        "--version", is_eager=True, help="Show the version and exit.")] = False,
) -> None:
    if version:
        from importlib.metadata import version as package_version

        typer.echo(f"aip {package_version('aip')}")
        raise typer.Exit()
    ctx.obj = CliState(server=server_url, token=token)


app.command("up", rich_help_panel="Server")(server.up)
app.command("down", rich_help_panel="Server")(server.down)
app.command(
    "run",
    rich_help_panel="Jobs",
    context_settings={"allow_interspersed_args": False},
)(run.run)
app.add_typer(jobs.app, name="job", rich_help_panel="Jobs")
app.add_typer(nodes.app, name="node", rich_help_panel="Cluster")
app.add_typer(queues.app, name="queue", rich_help_panel="Cluster")
app.add_typer(sim.app, name="sim", rich_help_panel="Cluster")
app.add_typer(envs.app, name="env", rich_help_panel="Jobs")
app.add_typer(models.app, name="model", rich_help_panel="Models")
app.add_typer(endpoints.serve_app, name="serve", rich_help_panel="Models")
app.add_typer(endpoints.app, name="endpoint", rich_help_panel="Models")
app.command("optimize", rich_help_panel="Models")(optimize.optimize)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="aip")


def report_error(exc: BaseException) -> int:
    """Print ``error: message`` and one line per field to stderr; return the exit code."""
    from rich.text import Text

    from aip.cli.output import stderr
    from aip.cli.specs import InvalidFlags
    from aip.errors import AIPError

    console = stderr()
    if isinstance(exc, AIPError):
        console.print(Text(f"error: {_headline(exc)}", style="bold red"))
        for path, text in exc.fields.items():
            console.print(Text(f"  {path}: {text}", style="red"))
        return USAGE_EXIT_CODE if isinstance(exc, InvalidFlags) else 1
    console.print(Text(f"error: unexpected {type(exc).__name__}: {exc}", style="bold red"))
    console.print(Text("  set AIP_DEBUG=1 to see the traceback", style="red"))
    return 1


def _headline(exc: Any) -> str:
    """The message without the field summary that the field lines below repeat."""
    message: str = exc.message
    fields: dict[str, str] = exc.fields
    summaries = ("; ".join(f"{path}: {text}" for path, text in fields.items()),
                 "; ".join(fields.values()))
    for summary in summaries:
        if summary and message.endswith(summary):
            return message[: -len(summary)].rstrip(" :;(") or message
    return message


def _debug() -> bool:
    from aip.config import debug_enabled

    return debug_enabled()
