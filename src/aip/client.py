"""``aip.Client``: the Python SDK for the AIP REST API (``/api/v1``).

    from aip.client import Client

    client = Client()                              # finds the local server and token
    job = client.submit_job({"name": "train", "command": ["python", "train.py"]})
    for line in client.follow_logs(job["id"]):
        print(line)
    final = client.wait_job(job["id"])             # SUCCEEDED, FAILED or CANCELLED

Without arguments the server comes from ``AIP_SERVER`` or ``$AIP_HOME/server.json`` (written
by ``aip up``) and the token from ``AIP_TOKEN`` or ``$AIP_HOME/token``. Every method returns
the server's JSON as plain dicts. Errors the server sends come back as the same ``AIPError``
subclasses it raised; an unreachable server is ``ServerUnavailable``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from aip.errors import AIPError, ServerUnavailable, Unauthorized, error_from_body

if TYPE_CHECKING:
    from aip.spec import JobSpec, QueueSpec

API_PREFIX = "/api/v1"
FINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
USER_AGENT = "aip-client/0.1.0"

NO_SERVER_MESSAGE = "no AIP server found: start one with `aip up`, or set AIP_SERVER"

Job = dict[str, Any]
Page = dict[str, Any]


class JobWaitTimeout(AIPError):
    """``wait_job`` gave up before the job reached a final state."""

    code = "wait_timeout"
    http_status = 504


class Client:
    """A keep-alive HTTP client for one AIP server. Use it as a context manager or ``close()``."""

    def __init__(
        self,
        server: str | None = None,
        token: str | None = None,
        timeout: float = 30,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``transport`` replaces httpx's network layer (custom TLS, proxies, tests)."""
        if server is None or token is None:
            from aip.config import Settings

            settings = Settings()
            server = server or settings.resolve_server_url()
            token = token or settings.resolve_token()
        if not server:
            raise ServerUnavailable(NO_SERVER_MESSAGE)
        if not token:
            raise Unauthorized(
                "no API token: pass --token (token=...), set AIP_TOKEN, or run on the machine "
                "where `aip up` wrote $AIP_HOME/token")
        self.server = server.rstrip("/")
        self.timeout = timeout
        self._http = httpx.Client(
            base_url=self.server + API_PREFIX,
            timeout=timeout,
            transport=transport,
            headers={"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT},
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- server ---------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``{"status": "ok", "version": ...}``. To probe a server without a token, use
        ``check_health(url)``."""
        return self._json("GET", "/health")

    # -- jobs -----------------------------------------------------------------------------

    def submit_job(self, spec: JobSpec | Mapping[str, Any]) -> Job:
        """Submit a ``JobSpec`` (or a dict in its shape); returns the new job."""
        return self._json("POST", "/jobs", json=_spec_body(spec))

    def submit_job_yaml(self, text: str) -> Job:
        """Submit a job spec as YAML text, so the server's errors name YAML lines."""
        return self._json(
            "POST", "/jobs", content=text.encode(),
            headers={"Content-Type": "application/yaml"})

    def list_jobs(
        self,
        state: str | Sequence[str] | None = None,
        queue: str | None = None,
        name: str | None = None,
        labels: Mapping[str, str] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page:
        """One page: ``{"items": [Job], "total", "limit", "offset"}``, newest first."""
        states = [state] if isinstance(state, str) else list(state or [])
        params: list[tuple[str, str | int]] = [("state", s) for s in states]
        if queue:
            params.append(("queue", queue))
        if name:
            params.append(("name", name))
        params.extend(("label", f"{key}={value}") for key, value in (labels or {}).items())
        params.extend([("limit", limit), ("offset", offset)])
        return self._json("GET", "/jobs", params=params)

    def get_job(self, job_id: str) -> Job:
        return self._json("GET", _job_path(job_id))

    def cancel_job(self, job_id: str) -> Job:
        """Ask the server to cancel; the job turns CANCELLED once its replicas stop."""
        return self._json("POST", _job_path(job_id, "cancel"))

    def job_events(self, job_id: str) -> list[dict[str, Any]]:
        """``[{"time", "type", "message"}]``, oldest first."""
        items: list[dict[str, Any]] = self._json("GET", _job_path(job_id, "events"))["items"]
        return items

    def job_logs(self, job_id: str, replica: str | None = None, tail: int | None = None) -> str:
        """The logs so far. Without ``replica``, all replicas (prefixed "[worker-0] ")."""
        response = self._request(
            "GET", _job_path(job_id, "logs"), params=_log_params(replica, tail, follow=False))
        return response.text

    def follow_logs(
        self, job_id: str, replica: str | None = None, tail: int | None = None
    ) -> Iterator[str]:
        """Yield log lines (without newlines) as they are written, until the job ends."""
        params = _log_params(replica, tail, follow=True)
        # A quiet job may write nothing for hours: no read timeout while streaming.
        timeout = httpx.Timeout(self.timeout, read=None)
        try:
            with self._http.stream(
                "GET", _job_path(job_id, "logs"), params=params, timeout=timeout
            ) as response:
                if response.is_error:
                    response.read()
                    raise _error_from_response(response)
                yield from response.iter_lines()
        except httpx.TransportError as exc:
            raise self._unavailable(exc) from None

    def wait_job(self, job_id: str, timeout: float | None = None, poll: float = 0.2) -> Job:
        """Block until the job is SUCCEEDED, FAILED or CANCELLED; return it.

        Raises ``JobWaitTimeout`` after ``timeout`` seconds (None waits forever).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get_job(job_id)
            if job["state"] in FINAL_STATES:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise JobWaitTimeout(
                    f"job {job_id} is still {job['state']} after {timeout:g}s",
                    fields={"reason": job["reason"]} if job.get("reason") else None)
            time.sleep(poll)

    # -- nodes and queues -----------------------------------------------------------------

    def list_nodes(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._json("GET", "/nodes")["items"]
        return items

    def list_queues(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._json("GET", "/queues")["items"]
        return items

    def create_queue(self, spec: QueueSpec | Mapping[str, Any]) -> dict[str, Any]:
        """Create a queue from a ``QueueSpec`` (or a dict in its shape)."""
        return self._json("POST", "/queues", json=_spec_body(spec))

    def get_queue(self, name: str) -> dict[str, Any]:
        return self._json("GET", f"/queues/{_segment(name)}")

    # -- plumbing -------------------------------------------------------------------------

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        body: dict[str, Any] = self._request(method, path, **kwargs).json()
        return body

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unavailable(exc) from None
        if response.is_error:
            raise _error_from_response(response)
        return response

    def _unavailable(self, exc: httpx.TransportError) -> ServerUnavailable:
        if isinstance(exc, httpx.TimeoutException):
            return ServerUnavailable(
                f"the AIP server at {self.server} did not answer within {self.timeout:g}s")
        return ServerUnavailable(
            f"cannot reach the AIP server at {self.server} ({exc or type(exc).__name__}): "
            "is it running? Start one with `aip up`, or check AIP_SERVER")


def check_health(server: str, timeout: float = 2.0) -> dict[str, Any] | None:
    """The health answer of the server at ``server``, or None if none answers there."""
    try:
        response = httpx.get(f"{server.rstrip('/')}{API_PREFIX}/health", timeout=timeout)
        body = response.json() if response.is_success else None
    except (httpx.HTTPError, ValueError):
        return None
    return body if isinstance(body, dict) and body.get("status") == "ok" else None


def _job_path(job_id: str, action: str = "") -> str:
    return f"/jobs/{_segment(job_id)}" + (f"/{action}" if action else "")


def _segment(value: str) -> str:
    """One URL path segment: an id such as "../x" cannot reach another route."""
    return quote(value, safe="")


def _spec_body(spec: JobSpec | QueueSpec | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(spec, Mapping):
        return dict(spec)
    return spec.model_dump(mode="json")


def _log_params(replica: str | None, tail: int | None, *, follow: bool) -> dict[str, str | int]:
    params: dict[str, str | int] = {"follow": "true" if follow else "false"}
    if replica:
        params["replica"] = replica
    if tail is not None:
        params["tail"] = tail
    return params


def _error_from_response(response: httpx.Response) -> AIPError:
    try:
        body: object = response.json()
    except ValueError:
        body = response.text[:500]
    error = error_from_body(response.status_code, body)
    if type(error) is AIPError and response.status_code == 401:
        return Unauthorized(f"the AIP server refused the token (HTTP 401): {body!r}")
    return error
