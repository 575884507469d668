"""The ``Sink`` a tracker uses in a job: the AIP server's tracking API, called through
``aip.client.Client`` with the job's own token (``AIP_JOB_TOKEN``).

It turns the client's errors into the sink contract: an unreachable server or a 5xx answer
is ``Unavailable`` (the tracker keeps the data and retries), any other refusal is
``Rejected`` (the data is dropped).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from aip.errors import AIPError
from aip.tracking.common import Point, Rejected, Unavailable

if TYPE_CHECKING:
    from aip.client import Client


class HttpSink:
    """Sends to the AIP server through ``aip.client.Client`` with the job's token."""

    def __init__(self, server: str, token: str, job_id: str, timeout: float = 10.0) -> None:
        self.server = server
        self.token = token
        self.job_id = job_id
        self.timeout = timeout
        self._client: Client | None = None
        self._client_lock = threading.Lock()  # the sender thread and log_artifact share it

    def send_metrics(self, points: list[Point], rank: int) -> None:
        body = [{"key": key, "step": step, "value": value if math.isfinite(value) else None,
                 "time": at, "rank": rank} for key, step, value, at in points]
        self._call(lambda client: client.log_metrics(self.job_id, body))

    def send_params(self, params: dict[str, str]) -> None:
        self._call(lambda client: client.log_params(self.job_id, params))

    def upload(self, path: Path, name: str) -> None:
        self._call(lambda client: client.upload_artifact(self.job_id, path, name))

    def close(self) -> None:
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _call(self, action: Callable[[Client], object]) -> None:
        from aip.errors import ServerUnavailable

        with self._client_lock:
            if self._client is None:
                from aip.client import Client

                self._client = Client(server=self.server, token=self.token,
                                      timeout=self.timeout)
            client = self._client
        try:
            action(client)
        except ServerUnavailable as exc:
            raise Unavailable(str(exc)) from None
        except AIPError as exc:
            if exc.http_status >= 500:
                raise Unavailable(str(exc)) from None
            raise Rejected(str(exc)) from None
