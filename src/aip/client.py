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

import hashlib
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import quote

import httpx

from aip.errors import (
    AIPError,
    InvalidSpec,
    NotFound,
    ServerUnavailable,
    Unauthorized,
    error_from_body,
)

if TYPE_CHECKING:
    from aip.registry.flavors import PreparedModel
    from aip.spec import JobSpec, QueueSpec
    from aip.spec.endpoint import EndpointSpec

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

    def resolve_job(self, ref: str) -> Job:
        """The job ``ref`` names: a job id, or a job name (its newest run)."""
        try:
            return self.get_job(ref)
        except NotFound:
            named = [job for job in self.list_jobs(name=ref, limit=50)["items"]
                     if job["name"] == ref]
            if not named:
                raise NotFound(f"no job with the id or name {ref!r}: list jobs with "
                               "`aip job list`", fields={"job": "unknown id or name"}) from None
            return max(named, key=lambda job: job["created_at"])

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

    # -- tracking: what jobs log (``aip.log_metrics``, ...) --------------------------------

    def log_metrics(self, job_id: str, points: Sequence[Mapping[str, Any]]) -> int:
        """Store metric points ``{"key", "step", "value", "rank"?, "time"?}`` (at most 10,000
        a call); a (key, rank, step) logged again takes the new value. Returns how many."""
        body = self._json("POST", _job_path(job_id, "metrics"), json={"points": list(points)})
        count: int = body["count"]
        return count

    def job_metrics(self, job_id: str, key: str | None = None,
                    replica: int | None = None) -> list[dict[str, Any]]:
        """``[{"key", "step", "value", "time", "rank"}]`` by key, rank and step; ``replica``
        is a replica's global rank (its ``AIP_RANK``). A value of None was NaN or ±inf."""
        params: dict[str, str | int] = {}
        if key is not None:
            params["key"] = key
        if replica is not None:
            params["replica"] = replica
        items: list[dict[str, Any]] = self._json(
            "GET", _job_path(job_id, "metrics"), params=params)["items"]
        return items

    def log_params(self, job_id: str, params: Mapping[str, Any]) -> dict[str, str]:
        """Store params (values as text; a key logged again takes the new value); returns
        all the job's params."""
        body = {"params": {key: value if isinstance(value, str) else str(value)
                           for key, value in params.items()}}
        stored: dict[str, str] = self._json(
            "POST", _job_path(job_id, "params"), json=body)["params"]
        return stored

    def job_params(self, job_id: str) -> dict[str, str]:
        params: dict[str, str] = self._json("GET", _job_path(job_id, "params"))["params"]
        return params

    def upload_artifact(
        self, job_id: str, source: str | os.PathLike[str] | BinaryIO, path: str, *,
        progress: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        """Stream a file (or an open binary stream) to the job's artifact ``path``; returns
        ``{"path", "key", "size", "sha256", "time"}`` once stored. ``progress`` is called
        with each chunk's size. The stored sha256 is checked against the bytes sent."""
        from aip.tracking import ARTIFACT_CHUNK

        digest = hashlib.sha256()

        def chunks(stream: BinaryIO) -> Iterator[bytes]:
            while chunk := stream.read(ARTIFACT_CHUNK):
                digest.update(chunk)
                if progress is not None:
                    progress(len(chunk))
                yield chunk

        # the server answers once the store holds the last byte: no read timeout meanwhile
        timeout = httpx.Timeout(self.timeout, read=None)
        headers = {"Content-Type": "application/octet-stream"}
        if isinstance(source, str | os.PathLike):
            with open(source, "rb") as stream:
                stored = self._json("POST", _job_path(job_id, "artifacts"),
                                    params={"path": path}, content=chunks(stream),
                                    headers=headers, timeout=timeout)
        else:
            stored = self._json("POST", _job_path(job_id, "artifacts"), params={"path": path},
                                content=chunks(source), headers=headers, timeout=timeout)
        if stored.get("sha256") != digest.hexdigest():
            raise AIPError(f"artifact {path!r} of job {job_id} arrived damaged: the server "
                           f"stored sha256 {stored.get('sha256')}, {digest.hexdigest()} was "
                           "sent; upload it again")
        return stored

    def job_artifacts(self, job_id: str, prefix: str | None = None) -> list[dict[str, Any]]:
        """``[{"path", "key", "size", "sha256", "time"}]`` by path; with ``prefix``, the
        artifact of that path or those under that directory."""
        params = {"prefix": prefix} if prefix else {}
        items: list[dict[str, Any]] = self._json(
            "GET", _job_path(job_id, "artifacts"), params=params)["items"]
        return items

    def download_artifact(
        self, job_id: str, path: str, destination: str | os.PathLike[str], *,
        progress: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        """Stream the job's artifact ``path`` into the file ``destination`` (written as
        ``<destination>.part``, renamed once its sha256 matches the server's); returns
        ``{"path", "size", "sha256"}``. ``progress`` is called with each chunk's size."""
        from aip.tracking import ARTIFACT_CHUNK, ARTIFACT_SHA256_HEADER

        target = Path(destination)
        partial = target.with_name(target.name + ".part")
        url = _job_path(job_id, "artifacts") + "/" + quote(path, safe="/")
        digest, size = hashlib.sha256(), 0
        try:
            with self._http.stream("GET", url, timeout=httpx.Timeout(self.timeout, read=None)
                                   ) as response:
                if response.is_error:
                    response.read()
                    raise _error_from_response(response)
                expected = response.headers.get(ARTIFACT_SHA256_HEADER)
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(partial, "wb") as out:
                    for chunk in response.iter_bytes(ARTIFACT_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
                        if progress is not None:
                            progress(len(chunk))
        except httpx.TransportError as exc:
            partial.unlink(missing_ok=True)
            raise self._unavailable(exc) from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        if expected and digest.hexdigest() != expected:
            partial.unlink(missing_ok=True)
            raise AIPError(f"artifact {path!r} of job {job_id} arrived damaged (sha256 "
                           f"{digest.hexdigest()}, the server has {expected}); download it "
                           "again")
        os.replace(partial, target)
        return {"path": str(target), "size": size, "sha256": digest.hexdigest()}

    # -- models: the registry (``models:/name@alias``) ------------------------------------

    def register_model(
        self, name: str, path: str | os.PathLike[str], flavor: str | None = None, *,
        signature: Mapping[str, Any] | None = None, python_class: str | None = None,
        example_input: Any = None, description: str | None = None,
        source_job: str | None = None, metadata: Mapping[str, Any] | None = None,
        infer_signature: bool = True, progress: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        """Register the model file or directory at ``path`` as the next version of ``name``.

        The flavor is detected from the files when not given; the signature is inferred here,
        in this process (loading a pickle runs its code: only register files you trust), or
        taken from ``signature``; ``example_input`` (arrays) gives TorchScript's. The files
        and the manifest are streamed as one tar; ``progress`` gets each chunk's size.
        Returns the new version."""
        from aip.registry.flavors import prepare_model

        prepared = prepare_model(
            Path(path), flavor, signature=signature, python_class=python_class,
            example_input=example_input, metadata=metadata, infer=infer_signature)
        return self.upload_model(name, prepared, description=description,
                                 source_job=source_job, progress=progress)

    def upload_model(
        self, name: str, prepared: PreparedModel, *, description: str | None = None,
        source_job: str | None = None, progress: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        """Upload a model laid out by ``aip.registry.flavors.prepare_model``."""
        from aip.registry.transfer import counted, upload_archive

        stream = upload_archive(prepared)
        params = {key: value for key, value in (
            ("description", description), ("source_job", source_job)) if value is not None}
        headers = {"Content-Type": "application/x-tar", "Content-Length": str(stream.size)}
        return self._json("POST", f"/models/{_segment(name)}/versions", params=params,
                          content=counted(stream, progress), headers=headers,
                          timeout=httpx.Timeout(self.timeout, read=None))

    def register_model_from_job(
        self, name: str, job_id: str, artifact: str, flavor: str | None = None, *,
        signature: Mapping[str, Any] | None = None, python_class: str | None = None,
        description: str | None = None, metadata: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Register a job's artifact (a file or a directory the job logged) as the next
        version of ``name``, recording the job and its latest metrics as lineage. The server
        copies the files; it infers the signature only of flavors it reads without running
        code (onnx, xgboost, lightgbm, tensorflow, skops)."""
        body: dict[str, Any] = {"source_job": job_id, "artifact": artifact,
                                "metadata": dict(metadata or {})}
        for key, value in (("flavor", flavor), ("signature", signature),
                           ("python_class", python_class), ("description", description)):
            if value is not None:
                body[key] = dict(value) if isinstance(value, Mapping) else value
        return self._json("POST", f"/models/{_segment(name)}/versions", json=body,
                          timeout=httpx.Timeout(self.timeout, read=None))

    def list_models(self, name: str | None = None, limit: int = 50,
                    offset: int = 0) -> Page:
        """``{"items": [model], "total", "limit", "offset"}`` by name; ``name`` filters."""
        params: dict[str, str | int] = {"limit": limit, "offset": offset}
        if name:
            params["name"] = name
        return self._json("GET", "/models", params=params)

    def get_model(self, name: str) -> dict[str, Any]:
        """A model with its aliases and versions (newest first)."""
        return self._json("GET", f"/models/{_segment(name)}")

    def get_model_version(self, name: str, version: int) -> dict[str, Any]:
        """One version: flavor, signature, manifest, files, lineage (source job, metrics)."""
        return self._json("GET", f"/models/{_segment(name)}/versions/{int(version)}")

    def resolve_model(self, uri: str) -> dict[str, Any]:
        """The version ``models:/name@alias``, ``models:/name/3`` or ``models:/name``
        (the newest) names."""
        from aip.registry.uris import parse_model_uri

        return self._json("GET", "/models/resolve", params={"uri": str(parse_model_uri(uri))})

    def set_alias(self, name: str, alias: str, version: int) -> dict[str, Any]:
        """Point ``alias`` (production, staging ...) at ``version``."""
        return self._json("PUT", f"/models/{_segment(name)}/aliases/{_segment(alias)}",
                          json={"version": int(version)})

    def delete_alias(self, name: str, alias: str) -> None:
        self._request("DELETE", f"/models/{_segment(name)}/aliases/{_segment(alias)}")

    def delete_model(self, name: str, version: int | None = None) -> dict[str, Any]:
        """Remove one version (its files too), or the whole model when ``version`` is None.
        ``Conflict`` while an alias, an endpoint or a replica uses it."""
        if version is not None:
            self._request("DELETE", f"/models/{_segment(name)}/versions/{int(version)}")
            return {"name": name, "removed_versions": 1}
        return self._json("DELETE", f"/models/{_segment(name)}")

    def download_model(
        self, model: str | Mapping[str, Any], dest: str | os.PathLike[str], *,
        progress: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        """Download a version (a URI, or a version as ``resolve_model`` returns it) into the
        new or empty directory ``dest``; every file is checked against the sha256 the registry
        recorded, and ``dest`` appears only once all are. Returns the version."""
        from aip.registry.transfer import unpack_verified

        version = self.resolve_model(model) if isinstance(model, str) else dict(model)
        path = (f"/models/{_segment(version['name'])}/versions/{int(version['version'])}"
                "/files")
        try:
            with self._http.stream("GET", path, timeout=httpx.Timeout(self.timeout, read=None)
                                   ) as response:
                if response.is_error:
                    response.read()
                    raise _error_from_response(response)
                unpack_verified(response.iter_bytes(), Path(dest), version["files"],
                                progress=progress)
        except httpx.TransportError as exc:
            raise self._unavailable(exc) from None
        return version

    # -- endpoints ------------------------------------------------------------------------

    def deploy_endpoint(self, spec: EndpointSpec | Mapping[str, Any]) -> dict[str, Any]:
        """Create the endpoint or roll it to ``spec``; ``token`` in the answer is set only
        when one was made now (keep it: it is not shown again)."""
        body = dict(spec) if isinstance(spec, Mapping) else spec.model_dump(
            mode="json", exclude_defaults=True)
        return self._json("POST", "/endpoints", json=body)

    def list_endpoints(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/endpoints")["items"])

    def get_endpoint(self, name: str) -> dict[str, Any]:
        return self._json("GET", f"/endpoints/{_segment(name)}")

    def delete_endpoint(self, name: str) -> dict[str, Any]:
        return self._json("DELETE", f"/endpoints/{_segment(name)}")

    def rotate_endpoint_token(self, name: str) -> str:
        return str(self._json("POST", f"/endpoints/{_segment(name)}/token")["token"])

    def invoke_endpoint(self, name: str, payload: Mapping[str, Any], *,
                        token: str | None = None, path: str | None = None) -> dict[str, Any]:
        """Send ``payload`` to the endpoint through the router: ``{"instances": [...]}`` goes
        to ``/v1/models/NAME:predict``, ``{"inputs": [...]}`` (Open Inference Protocol v2) to
        ``/v2/models/NAME/infer``. ``token``: the endpoint's (default: this client's)."""
        endpoint = self.get_endpoint(name)
        if path is None:
            path = (f"/v2/models/{name}/infer" if "inputs" in payload
                    else f"/v1/models/{name}:predict")
        headers = dict(self._http.headers)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        try:
            response = httpx.post(endpoint["url"] + path, json=dict(payload), headers=headers,
                                  timeout=self.timeout)
        except httpx.TransportError as exc:
            raise self._unavailable(exc) from None
        if response.is_error:
            raise _endpoint_error(name, response)
        return dict(response.json())


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


def _endpoint_error(name: str, response: httpx.Response) -> AIPError:
    """A replica's or the router's error body ({"error": ...}) as the AIP error of its status."""
    try:
        body = response.json()
        message = str(body.get("error") or body.get("message") or body)
        field = body.get("field")
    except ValueError:
        message, field = response.text[:500], None
    by_status: dict[int, type[AIPError]] = {400: InvalidSpec, 401: Unauthorized, 404: NotFound,
                                             413: InvalidSpec, 422: InvalidSpec}
    cls = by_status.get(response.status_code, AIPError)
    return cls(f"endpoint {name}: {message}", fields={str(field): message} if field else None)
