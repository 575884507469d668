"""The HTTP server of one serving replica: one model, one process.

    python -m aip.serving.replica --model-dir DIR --port 8500 [--host 127.0.0.1] [--name NAME]
        [--max-batch-size 32 --max-wait-ms 5] [--max-body-bytes 67108864] [--threads 4]
        [--device auto|cpu|cuda]

Endpoints (Open Inference Protocol v2, as KServe and Triton serve it, plus KServe's v1 form):
    GET  /v2/health/live               200 while the process runs
    GET  /v2/health/ready              200 once the model is loaded, else 503
    GET  /v2                           server metadata (extensions: binary_tensor_data)
    GET  /v2/models/NAME               model metadata: inputs and outputs
    GET  /v2/models/NAME/ready         as /v2/health/ready
    POST /v2/models/NAME/infer         OIP v2 JSON, or binary tensors (see ``protocol``)
    GET  /v1/models/NAME               {"name", "ready"}
    POST /v1/models/NAME:predict       {"instances": [...]} -> {"predictions": [...]}
    GET  /metrics                      Prometheus text (see ``metrics``)

Errors are ``{"error", "code", "field"}`` with a 4xx for anything the client got wrong
(``errors``); the replica stays healthy after any of them.

The app is a plain ASGI callable (no framework: routing is one dict lookup) served by uvicorn
with uvloop and httptools when installed. The model loads in the background at startup, so
``live`` answers at once and ``ready`` once it is loaded; a model that fails to load stops the
process (exit status 1) after logging why. Inference never runs on the event loop: one
inference thread runs ``predict``, fed directly or through the ``Batcher`` when
``--max-batch-size`` > 1.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any, Final

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aip.serving.batching import Batcher, batch_rows
from aip.serving.dtypes import numpy_dtype
from aip.serving.errors import (
    BodyTooLarge,
    InferenceFailed,
    InvalidInput,
    MethodNotAllowed,
    ModelLoadError,
    ModelNotFound,
    ModelNotReady,
    RouteNotFound,
    ServingError,
)
from aip.serving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from aip.serving.metrics import ReplicaMetrics
from aip.serving.protocol import (
    HEADER_LENGTH,
    Blob,
    check_requested_outputs,
    decode_infer_request,
    decode_instances,
    dumps,
    encode_infer_response,
    encode_metadata,
    encode_predictions,
)
from aip.serving.runtimes.base import (
    Device,
    RuntimeOptions,
    ServingRuntime,
    load_runtime,
    read_manifest,
)
from aip.serving.validation import conform_inputs
from aip.serving.worker import InferenceThread
from aip.spec.model import Signature

log = logging.getLogger("aip.replica")

DEFAULT_MAX_BODY_BYTES: Final = 64 * 1024 * 1024
STREAM_ABOVE_BYTES: Final = 1024 * 1024  # larger responses go out part by part, uncopied
JSON: Final = b"application/json"
OCTET_STREAM: Final = b"application/octet-stream"
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ReplicaConfig(BaseModel):
    """What one replica serves and how (the command line's flags)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_dir: Path
    name: str | None = Field(default=None, description="default: the manifest's "
                             "metadata.name, else the directory's name")
    max_batch_size: int = Field(default=1, ge=1, description="1: no batching")
    max_wait_ms: float = Field(default=5.0, ge=0)
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024)
    threads: int | None = Field(default=None, ge=1)
    device: Device = "auto"


@dataclass(slots=True)
class Response:
    status: int
    parts: list[Blob]
    content_type: bytes = JSON
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


Handler = Callable[[Scope, Receive], Awaitable[Response]]


class _ClientGone(Exception):
    """The client disconnected before its request body arrived."""


class ReplicaApp:
    """The ASGI app of one replica. ``runtime``: an already loaded runtime (tests, embedding);
    ``on_load_failure`` is called with the reason when the model cannot load."""

    def __init__(self, config: ReplicaConfig, *, runtime: ServingRuntime | None = None,
                 on_load_failure: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.manifest = read_manifest(config.model_dir)
        self.name = config.name or str(self.manifest.metadata.get("name")
                                        or config.model_dir.resolve().name)
        self.runtime = runtime
        self.on_load_failure = on_load_failure
        self.ready = False
        self.load_error: str | None = None
        self.metrics = ReplicaMetrics(self.name, queue_depth=lambda: self._in_flight)
        self._in_flight = 0
        self._signature = Signature()
        self._output_names: list[str] = []
        self._metadata_body = b""
        self._thread: InferenceThread | None = None
        self._batcher: Batcher | None = None
        self._load_task: asyncio.Task[None] | None = None
        self._routes: dict[tuple[str, str], tuple[str, Handler]] = {
            ("POST", f"/v2/models/{self.name}/infer"): ("infer", self._infer),
            ("POST", f"/v1/models/{self.name}:predict"): ("predict", self._predict),
            ("GET", "/v2/health/live"): ("health", self._live),
            ("GET", "/v2/health/ready"): ("health", self._ready),
            ("GET", f"/v2/models/{self.name}/ready"): ("health", self._ready),
            ("GET", f"/v2/models/{self.name}"): ("metadata", self._model_metadata),
            ("GET", f"/v1/models/{self.name}"): ("metadata", self._model_status),
            ("GET", "/v2"): ("metadata", self._server_metadata),
            ("GET", "/metrics"): ("metrics", self._metrics),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._handle(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def start(self) -> None:
        """Start the inference thread and load the model in it, in the background."""
        self._thread = InferenceThread()
        self._load_task = asyncio.get_running_loop().create_task(self._load())

    async def wait_loaded(self) -> None:
        if self._load_task is not None:
            await self._load_task

    async def stop(self) -> None:
        if self._load_task is not None and not self._load_task.done():
            self._load_task.cancel()
        if self._batcher is not None:
            await self._batcher.close()
        if self._thread is not None:
            self._thread.close()
        if self.runtime is not None:
            self.runtime.close()
        self.ready = False

    # -- request handling ------------------------------------------------------------------

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = perf_counter()
        route, handler = self._routes.get((scope["method"], scope["path"]), ("other", None))
        try:
            if handler is None:
                raise self._no_route(scope["method"], scope["path"])
            response = await handler(scope, receive)
        except ServingError as exc:
            response = _error(exc)
        except _ClientGone:
            return
        except Exception as exc:  # a bug or a model failure: answer, log, keep serving
            log.exception("%s %s failed", scope["method"], scope["path"])
            response = _error(InferenceFailed(f"{type(exc).__name__}: {exc}"))
        await _send(send, response)
        self.metrics.observe_request(route, response.status, perf_counter() - start)

    async def _infer(self, scope: Scope, receive: Receive) -> Response:
        self._require_ready()
        headers = _headers(scope)
        body = await self._read_body(headers, receive)
        request = decode_infer_request(body, _int_header(headers, HEADER_LENGTH))
        inputs = conform_inputs(self._signature, request.inputs)
        if self._output_names:
            check_requested_outputs(request, self._output_names)
        parts, header_length = encode_infer_response(self.name, await self._run(inputs),
                                                     request)
        if header_length is None:
            return Response(200, parts)
        return Response(200, parts, OCTET_STREAM,
                        [(HEADER_LENGTH.encode(), str(header_length).encode())])

    async def _predict(self, scope: Scope, receive: Receive) -> Response:
        self._require_ready()
        body = await self._read_body(_headers(scope), receive)
        inputs = conform_inputs(self._signature, decode_instances(body, self._signature))
        return Response(200, [encode_predictions(await self._run(inputs))])

    async def _live(self, scope: Scope, receive: Receive) -> Response:
        return Response(200, [b'{"live":true}'])

    async def _ready(self, scope: Scope, receive: Receive) -> Response:
        self._require_ready()
        return Response(200, [b'{"ready":true}'])

    async def _model_metadata(self, scope: Scope, receive: Receive) -> Response:
        self._require_ready()
        return Response(200, [self._metadata_body])

    async def _model_status(self, scope: Scope, receive: Receive) -> Response:
        return Response(200, [dumps({"name": self.name, "ready": self.ready})])

    async def _server_metadata(self, scope: Scope, receive: Receive) -> Response:
        return Response(200, [dumps({"name": "aip-replica", "version": _version(),
                                     "extensions": ["binary_tensor_data"]})])

    async def _metrics(self, scope: Scope, receive: Receive) -> Response:
        return Response(200, [self.metrics.render()], METRICS_CONTENT_TYPE.encode())

    async def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._in_flight += 1
        try:
            if self._batcher is not None:
                outputs = await self._batcher.submit(inputs)
            else:
                outputs = await self._run_batch(inputs)
        finally:
            self._in_flight -= 1
        if not outputs:
            raise InferenceFailed("the model returned no outputs")
        return outputs

    def _run_batch(self, inputs: dict[str, np.ndarray]) -> asyncio.Future[dict[str, np.ndarray]]:
        assert self._thread is not None
        return self._thread.run(self._predict_timed, inputs)

    def _predict_timed(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Runs in the inference thread."""
        assert self.runtime is not None
        start = perf_counter()
        outputs = self.runtime.predict(inputs)
        self.metrics.observe_batch(batch_rows(inputs), perf_counter() - start)
        return outputs

    async def _read_body(self, headers: dict[bytes, bytes], receive: Receive) -> bytes:
        limit = self.config.max_body_bytes
        declared = _int_header(headers, "content-length")
        if declared is not None and declared > limit:
            raise _too_large(declared, limit)
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > limit:
                raise _too_large(total, limit)
            if not message.get("more_body", False):
                if not chunks:
                    return bytes(chunk)
                chunks.append(chunk)
                return b"".join(chunks)
            chunks.append(chunk)

    def _require_ready(self) -> None:
        if not self.ready:
            state = f"failed to load: {self.load_error}" if self.load_error else "is loading"
            raise ModelNotReady(f"model {self.name!r} {state}")

    def _no_route(self, method: str, path: str) -> ServingError:
        for prefix in ("/v2/models/", "/v1/models/"):
            if path.startswith(prefix):
                name = path[len(prefix):].split("/")[0].split(":")[0]
                if name != self.name:
                    return ModelNotFound(f"model {name!r} is not served here; this replica "
                                         f"serves {self.name!r}", field="model")
        if any(known == path for _, known in self._routes):
            return MethodNotAllowed(f"{method} is not allowed on {path}")
        return RouteNotFound(f"no route {method} {path}; inference is POST "
                             f"/v2/models/{self.name}/infer")

    # -- lifecycle -------------------------------------------------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _load(self) -> None:
        assert self._thread is not None
        options = RuntimeOptions(threads=self.config.threads, device=self.config.device)
        started = perf_counter()
        try:
            if self.runtime is None:
                _, loaded = await self._thread.run(
                    load_runtime, self.config.model_dir, options, self.manifest)
                self.runtime = loaded
            self._activate(self.runtime)
        except Exception as exc:
            self.load_error = str(exc)
            log.error("model %r cannot be served: %s", self.name, exc)
            if not isinstance(exc, ServingError):
                log.debug("load failure", exc_info=True)
            if self.on_load_failure is not None:
                self.on_load_failure(self.load_error)
            return
        log.info("model %r (%s) ready in %.2fs%s", self.name, self.manifest.flavor,
                 perf_counter() - started,
                 f", batching up to {self._batcher.max_batch_size} rows within "
                 f"{self.config.max_wait_ms} ms" if self._batcher else "")

    def _activate(self, runtime: ServingRuntime) -> None:
        signature = runtime.signature
        for spec in [*signature.inputs, *signature.outputs]:
            try:
                numpy_dtype(spec.dtype)
            except ValueError as exc:
                raise ModelLoadError(f"signature tensor {spec.name!r}: {exc}") from None
        self._signature = signature
        self._output_names = [spec.name for spec in signature.outputs]
        self._metadata_body = encode_metadata(
            self.name, signature, runtime.platform,
            [str(self.manifest.metadata["version"])] if "version" in self.manifest.metadata
            else None)
        if self.config.max_batch_size > 1:
            fixed = [spec.name for spec in signature.inputs
                     if spec.shape and spec.shape[0] != -1]
            if fixed:
                log.warning("batching is off: inputs %s have a fixed first dimension",
                            ", ".join(fixed))
            else:
                self._batcher = Batcher(self._run_batch,
                                        max_batch_size=self.config.max_batch_size,
                                        max_wait_ms=self.config.max_wait_ms)
        self.ready = True
        self.metrics.set_ready(True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = ReplicaConfig(model_dir=args.model_dir, name=args.name,
                               max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms,
                               max_body_bytes=args.max_body_bytes, threads=args.threads,
                               device=args.device)
        app = ReplicaApp(config)
    except (ModelLoadError, ValidationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(
        app, host=args.host, port=args.port, loop="auto", http="auto", lifespan="on",
        access_log=False, server_header=False, log_level=args.log_level,
        timeout_keep_alive=30))

    def stop_server(reason: str) -> None:
        server.should_exit = True

    app.on_load_failure = stop_server
    server.run()
    return 1 if app.load_error else 0


# -- helpers, in call order ----------------------------------------------------------------

def _error(exc: ServingError) -> Response:
    return Response(exc.http_status, [dumps(exc.to_body())])


async def _send(send: Send, response: Response) -> None:
    length = sum(len(part) for part in response.parts)
    headers = [(b"content-type", response.content_type),
               (b"content-length", str(length).encode()), *response.headers]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    parts = response.parts
    if len(parts) == 1 or length <= STREAM_ABOVE_BYTES:
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        await send({"type": "http.response.body", "body": body})
        return
    for part in parts:
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return dict(scope["headers"])


def _int_header(headers: dict[bytes, bytes], name: str) -> int | None:
    value = headers.get(name.encode())
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"headers.{name}: {value.decode(errors='replace')!r} is not a "
                           "number", field=f"headers.{name}") from None


def _too_large(size: int, limit: int) -> BodyTooLarge:
    return BodyTooLarge(f"body: {size} bytes is over this replica's limit of {limit} bytes; "
                        "send fewer rows per request (or raise --max-body-bytes)",
                        field="body")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("aip")
    except PackageNotFoundError:
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m aip.serving.replica",
                                     description="Serve one model directory over HTTP (Open "
                                     "Inference Protocol v2).")
    parser.add_argument("--model-dir", type=Path, required=True,
                        help="directory holding aip-model.json and the model")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--name", help="the model's name in URLs (default: the manifest's "
                        "metadata.name, else the directory's name)")
    parser.add_argument("--max-batch-size", type=int, default=1,
                        help="rows per predict call; 1 (default) turns batching off")
    parser.add_argument("--max-wait-ms", type=float, default=5.0,
                        help="how long a batch waits for more rows after its first request")
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES,
                        help="larger request bodies get 413")
    parser.add_argument("--threads", type=int, help="the framework's intra-op threads "
                        "(default: OMP_NUM_THREADS, else the CPUs this process may use)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"])
    return parser


if __name__ == "__main__":
    sys.exit(main())
