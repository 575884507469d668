"""What the global options carry to every command, and the SDK client built from them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from aip.client import Client


@dataclass(frozen=True)
class CliState:
    """``--server`` and ``--token``; None falls back to AIP_SERVER / AIP_TOKEN / AIP_HOME."""

    server: str | None = None
    token: str | None = None


def open_client(ctx: typer.Context) -> Client:
    from aip.client import Client

    state = ctx.find_object(CliState) or CliState()
    return Client(server=state.server, token=state.token)
