"""FastAPI dependencies, as ``Annotated`` aliases routes can declare."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from aip.control.platform import Platform


async def get_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


def get_session(platform: PlatformDep) -> Iterator[Session]:
    """A session for READING. Its commit runs in the dependency's teardown, which FastAPI
    may run after the response is sent: routes that write open
    ``platform.sessions.begin()`` themselves, so the write is committed before the answer."""
    with platform.sessions.begin() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
