"""Terminal output shared by the commands: consoles, ``--output json|table``, and the small
formatters every table uses (relative ages, states in colour, GPU assignments, sizes).

Rich is imported inside the functions that draw, so importing this module stays cheap.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


class OutputFormat(StrEnum):
    table = "table"
    wide = "wide"
    json = "json"


OutputOption = Annotated[
    OutputFormat,
    typer.Option("--output", "-o", case_sensitive=False,
                 help="table for people (wide: more columns), json for scripts."),
]

PIPE_WIDTH = 1000
WRAP_MIN_WIDTH = 8

STATE_STYLES = {
    "PENDING": "yellow",
    "ADMITTED": "cyan",
    "RUNNING": "bold blue",
    "SUCCEEDED": "green",
    "FAILED": "bold red",
    "CANCELLED": "magenta",
    "PREEMPTED": "magenta",
    "RETRYING": "yellow",
}


def stdout() -> Console:
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = PIPE_WIDTH  # piped to grep or a file: whole rows, one per line
    return console


def stderr() -> Console:
    from rich.console import Console

    # Soft wrap: long error lines stay whole, so they can be copied and grepped.
    return Console(stderr=True, highlight=False, soft_wrap=True)


def emit_json(data: object) -> None:
    """Pure JSON on stdout: no colour, no markup, one trailing newline."""
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
    sys.stdout.flush()


def note(message: str, style: str = "dim") -> None:
    """A line for the person at the terminal, on stderr so stdout stays scriptable."""
    from rich.text import Text

    stderr().print(Text(message, style=style))


def new_table(*columns: str, wrap: tuple[str, ...] = ()) -> Table:
    """A dense kubectl-like table: no borders, bold headers. On a narrow terminal only the
    ``wrap`` columns (free text) wrap; the others keep whole values."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
    for column in columns:
        if column in wrap:
            table.add_column(column, overflow="fold", ratio=1, min_width=WRAP_MIN_WIDTH)
        else:
            table.add_column(column, no_wrap=True)
    return table


def add_row(table: Table, *cells: Any) -> None:
    """Add a row whose strings are shown as they are: server text such as "[gpu 0]" or a
    command line is data, never Rich markup."""
    from rich.text import Text

    table.add_row(*(Text(cell) if isinstance(cell, str) else cell for cell in cells))


def new_grid() -> Table:
    """Two columns, label and value, for a detail view."""
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    return grid


def styled_state(state: str) -> Any:
    from rich.text import Text

    return Text(state, style=STATE_STYLES.get(state, ""))


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def short_duration(seconds: float) -> str:
    """90 -> "1m30s", 7200 -> "2h", 200000 -> "2d7h": two units at most, like kubectl."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    for unit_seconds, unit, sub_seconds, sub_unit in (
        (86400, "d", 3600, "h"), (3600, "h", 60, "m"), (60, "m", 1, "s"),
    ):
        if seconds >= unit_seconds:
            whole, rest = divmod(seconds, unit_seconds)
            sub = rest // sub_seconds
            return f"{whole}{unit}{sub}{sub_unit}" if sub and whole < 10 else f"{whole}{unit}"
    return f"{seconds}s"  # pragma: no cover - the loop always returns


def age(value: str | None, now: datetime | None = None) -> str:
    """How long ago an ISO time was: "45s", "3m20s", "2d"; "-" when unknown."""
    moment = parse_time(value)
    if moment is None:
        return "-"
    return short_duration(((now or datetime.now(UTC)) - moment).total_seconds())


def elapsed(start: str | None, end: str | None, now: datetime | None = None) -> str:
    """Run time from start to end (or to now while running); "-" before it starts."""
    started = parse_time(start)
    if started is None:
        return "-"
    finished = parse_time(end) or now or datetime.now(UTC)
    return short_duration((finished - started).total_seconds())


def gpu_assignment(gpus: list[int] | None, share: float | None) -> str:
    """[0, 1] -> "0,1"; [0] with a 0.25 share -> "0 (0.25)"; none -> "-"."""
    if not gpus:
        return "-"
    text = ",".join(str(index) for index in gpus)
    return f"{text} ({share:g})" if share else text


def accelerator_assignment(accelerators: dict[str, list[Any]] | None) -> str:
    if not accelerators:
        return "-"
    return " ".join(f"{kind}:{','.join(str(i) for i in ids)}"
                    for kind, ids in sorted(accelerators.items()))


def human_bytes(value: object) -> str:
    """Bytes as a short binary size (17179869184 -> "16Gi"); strings pass through."""
    if isinstance(value, str):
        return value
    if not isinstance(value, int | float):
        return "-"
    amount = float(value)
    for unit in ("", "Ki", "Mi", "Gi", "Ti"):
        if abs(amount) < 1024 or unit == "Ti":
            return f"{amount:.1f}".removesuffix(".0") + unit if unit else f"{int(amount)}"
        amount /= 1024
    return str(value)  # pragma: no cover


def number(value: object) -> str:
    """2.0 -> "2", 0.25 -> "0.25", None -> "-"."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:g}"
    return "-" if value is None else str(value)
