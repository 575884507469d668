"""Progress bars for uploads and downloads, fed by the byte counts the artifact store and the
SDK report.

    with transfer_progress(total=info.size, description="model.onnx") as advance:
        store.get_file(key, path, progress=advance)      # advance(n): n more bytes moved

The bar draws on stderr (stdout stays scriptable) and only on a terminal; elsewhere, or
with ``enabled=False`` (``--output json``), the callback does nothing. ``total=None`` shows
bytes and speed without a percentage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from aip.cli.output import stderr


@contextmanager
def transfer_progress(total: int | None, description: str = "transfer", *,
                      enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """A callback ``advance(bytes)`` drawing one bar of ``total`` bytes while the block runs."""
    console = stderr()
    if not enabled or not console.is_terminal:
        yield _ignore
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield lambda moved: progress.advance(task, moved)


def _ignore(moved: int) -> None:
    pass
