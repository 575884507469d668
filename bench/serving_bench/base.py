"""What the serving benchmark's parts share: the server names, the ``Server`` interface every
adapter keeps, a model ``Variant`` and the ``Target`` a server gives for it, and helpers to
wait for a condition and to turn signals into ``KeyboardInterrupt``."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

SERVERS = ("aip", "aip-replica", "ray", "bentoml")


@dataclass(frozen=True)
class Variant:
    model: str
    batched: bool

    @property
    def name(self) -> str:  # an endpoint, a route and a Ray app name
        return f"{self.model}-batched" if self.batched else self.model


@dataclass(frozen=True)
class Target:
    url: str
    headers: dict[str, str]
    answer: Callable[[Any], Any]  # the predictions in the server's JSON answer


class Server(Protocol):
    """One server under test, started once per round."""

    def start(self) -> str:
        """Start the server (blocking); return what it runs, for the report. Raises when it
        cannot start: the server is then skipped, with the reason."""

    def serve(self, variant: Variant) -> contextlib.AbstractContextManager[Target]:
        """Deploy ``variant`` (blocking until it answers); the context gives its ``Target``
        and undeploys it on exit."""

    def stop(self) -> None:
        """Stop what ``start`` started; safe to call when ``start`` failed."""


def wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it returns something true, and return that."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        time.sleep(0.2)
    return value


def handle_signals() -> None:
    """SIGINT and SIGTERM raise KeyboardInterrupt, so every server started is stopped (even
    where SIGINT was ignored, as in a background job)."""
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, _interrupt)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
