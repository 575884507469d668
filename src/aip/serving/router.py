"""The serving gateway: one port in front of every endpoint's replicas.

    python -m aip.serving.router --port 8480 --admin-token-file ~/.aip/token

A request to ``/endpoints/<name>/<rest>`` (with the endpoint's token, or the platform's, as
``Authorization: Bearer …``) goes to ``<replica>/<rest>`` of one of the endpoint's ready replicas:
- the version is picked by the canary weights, then the replica with the fewest requests
  outstanding (ties broken at random);
- a replica that refuses the connection or drops it is marked down at once and the request,
  if the endpoint allows retries (inference is idempotent), goes to another replica;
- a share of requests (``shadow_percent`` of a version marked ``shadow``) is also sent to the
  shadow version, fire-and-forget: its answers are counted, never returned;
- with no ready replica (scaled to zero, or starting), a request waits up to
  ``cold_start_timeout`` for one and counts as in flight, which is what makes the autoscaler
  start one; the wait is measured and reported (``cold_starts``).
- with ``max_in_flight_per_replica`` set, a request beyond that many in flight per ready
  replica is answered 503 with ``Retry-After`` at once (backpressure), not queued;
- ``draining`` replicas (a rolling update, a scale-in) get no new requests; the control plane
  stops them once ``/-/stats`` shows nothing outstanding on them.

The control plane owns the table: it PUTs ``/-/routes`` (admin token) whenever it changes and
reads ``/-/stats`` (in flight, request counts, per-replica outstanding) for the autoscaler.
Health: every replica's ``/v2/health/ready`` is checked every ``health_interval`` seconds; a
replica that fails it takes no traffic until it passes again.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aip.serving.upstream import Headers, UpstreamError, UpstreamPool

log = logging.getLogger("aip.router")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

FORWARDED_REQUEST_HEADERS = (b"content-type", b"accept", b"inference-header-content-length",
                             b"content-encoding", b"accept-encoding")
FORWARDED_RESPONSE_HEADERS = (b"content-type", b"inference-header-content-length",
                              b"content-encoding")
HEALTH_TIMEOUT = 2.0
RETRIES = 2
DEFAULT_MAX_BODY = 64 * 2**20


@dataclass
class Replica:
    id: str
    url: str  # http://host:port
    state: str = "ready"  # ready | draining
    healthy: bool = True
    outstanding: int = 0
    requests: int = 0
    failures: int = 0
    host: str = field(init=False)
    port: int = field(init=False)

    def __post_init__(self) -> None:
        self.set_url(self.url)

    def set_url(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"replica {self.id}: url {url!r} is not http://host:port")
        self.url, self.host, self.port = url, parts.hostname, parts.port


@dataclass
class Version:
    name: str  # the version's label, e.g. "3"
    weight: float = 100.0
    shadow_percent: float = 0.0  # > 0: a shadow, receiving this share of copies
    replicas: list[Replica] = field(default_factory=list)

    def ready(self) -> list[Replica]:
        return [r for r in self.replicas if r.state == "ready" and r.healthy]


@dataclass
class Endpoint:
    name: str
    token_hashes: frozenset[str] = frozenset()  # sha256 hex of the tokens that may call it
    versions: list[Version] = field(default_factory=list)
    retry: bool = True
    max_body_bytes: int = DEFAULT_MAX_BODY
    cold_start_timeout: float = 120.0
    max_in_flight_per_replica: int | None = None
    in_flight: int = 0  # requests in the router for it now, waiting ones included
    waiting: int = 0  # of which waiting for a ready replica
    requests: int = 0
    errors: int = 0
    shed: int = 0  # answered 503 by backpressure
    cold_starts: list[float] = field(default_factory=list)  # seconds waited, recent
    ready_event: asyncio.Event = field(default_factory=asyncio.Event)

    def serving(self) -> list[Version]:
        return [v for v in self.versions if v.shadow_percent == 0 and v.weight > 0]

    def in_flight_limit(self) -> int | None:
        """Requests in flight beyond which new ones are shed (None: no limit)."""
        if self.max_in_flight_per_replica is None:
            return None
        ready = sum(len(v.ready()) for v in self.serving())
        return self.max_in_flight_per_replica * max(1, ready)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Router:
    def __init__(self, admin_token: str, *, health_interval: float = 1.0) -> None:
        self.admin_hash = token_hash(admin_token)
        self.endpoints: dict[str, Endpoint] = {}
        self.table_version = ""
        self.health_interval = health_interval
        self._upstream = UpstreamPool(connect_timeout=2.0)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._metrics = _Metrics()

    # -- the ASGI app -----------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        path: str = scope["path"]
        if path.startswith("/endpoints/"):
            await self._proxy(scope, receive, send)
        elif path == "/metrics":
            await _reply(send, 200, self._metrics.render(self), "text/plain; version=0.0.4")
        elif path == "/-/health":
            await _reply(send, 200, b'{"status":"ok"}')
        elif path in ("/-/routes", "/-/stats"):
            await self._admin(scope, receive, send)
        else:
            await _error(send, 404, f"no route {path}: call /endpoints/<name>/...")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._spawn(self._health_loop())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for task in self._tasks:
                    task.cancel()
                await self._upstream.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- the data path ------------------------------------------------------------------

    async def _proxy(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        _, _, name, *rest = scope["path"].split("/", 3)
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            await _error(send, 404, f"no endpoint {name!r}: list them with `aip endpoint list`")
            return
        if not self._authorized(scope, endpoint.token_hashes | {self.admin_hash}):
            await _error(send, 401, f"endpoint {name}: missing or wrong token; send "
                         "'Authorization: Bearer <endpoint token>'", {"WWW-Authenticate": "Bearer"})
            return
        body = await _read_body(receive, endpoint.max_body_bytes)
        if body is None:
            await _error(send, 413, f"request body over the endpoint's limit of "
                         f"{endpoint.max_body_bytes} bytes")
            return
        query = scope.get("query_string", b"")
        target = ("/" + (rest[0] if rest else "")).encode() + (b"?" + query if query else b"")
        headers = [(k, v) for k, v in scope["headers"] if k in FORWARDED_REQUEST_HEADERS]
        method = scope["method"].encode()
        # No await between this check and the count below: shedding is exact.
        limit = endpoint.in_flight_limit()
        if limit is not None and endpoint.in_flight >= limit:
            endpoint.shed += 1
            self._metrics.observe(name, "-", 503, time.perf_counter() - started)
            await _error(send, 503, f"endpoint {name} is at its limit of {limit} requests in "
                         "flight (max_in_flight_per_replica "
                         f"{endpoint.max_in_flight_per_replica} per ready replica); retry "
                         "after a second, or raise max_in_flight_per_replica or max_replicas",
                         {"Retry-After": "1"})
            return
        endpoint.in_flight += 1
        endpoint.requests += 1
        status = 502
        version_name = "-"
        try:
            version = await self._pick_version(endpoint)
            if version is None:
                status = 503
                await _error(send, 503, f"endpoint {name} has no ready replica after waiting "
                             f"{endpoint.cold_start_timeout:g}s")
                return
            version_name = version.name
            self._maybe_shadow(endpoint, method, target, headers, body)
            status, response_headers, payload = await self._forward(
                endpoint, version, method, target, headers, body)
            # Content-Length, so the answer goes whole rather than chunked.
            response_headers.append((b"content-length", str(len(payload)).encode()))
            await send({"type": "http.response.start", "status": status,
                        "headers": response_headers})
            await send({"type": "http.response.body", "body": payload})
        finally:
            endpoint.in_flight -= 1
            if status >= 500:
                endpoint.errors += 1
            self._metrics.observe(name, version_name, status, time.perf_counter() - started)

    async def _pick_version(self, endpoint: Endpoint) -> Version | None:
        """A serving version by weight among those with a ready replica; waits (a cold start)
        while none has one."""
        versions = [v for v in endpoint.serving() if v.ready()]
        if versions:
            return versions[0] if len(versions) == 1 else random.choices(
                versions, weights=[v.weight for v in versions])[0]
        waited_from = time.perf_counter()
        endpoint.waiting += 1
        try:
            deadline = waited_from + endpoint.cold_start_timeout
            while not (versions := [v for v in endpoint.serving() if v.ready()]):
                endpoint.ready_event.clear()
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    return None
                try:
                    await asyncio.wait_for(endpoint.ready_event.wait(), remaining)
                except TimeoutError:
                    return None
        finally:
            endpoint.waiting -= 1
        endpoint.cold_starts = [*endpoint.cold_starts[-99:], time.perf_counter() - waited_from]
        return random.choices(versions, weights=[v.weight for v in versions])[0]

    async def _forward(self, endpoint: Endpoint, version: Version, method: bytes,
                       target: bytes, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
        tried: set[str] = set()
        attempts = 1 + (RETRIES if endpoint.retry else 0)
        for _attempt in range(attempts):
            candidates = [r for r in version.ready() if r.id not in tried] or [
                r for v in endpoint.serving() for r in v.ready() if r.id not in tried]
            if not candidates:
                break
            replica = _least_outstanding(candidates)
            tried.add(replica.id)
            replica.outstanding += 1
            replica.requests += 1
            try:
                response = await self._upstream.request(replica.host, replica.port, method,
                                                        target, headers, body)
                out = [(k, v) for k, v in response.headers if k in FORWARDED_RESPONSE_HEADERS]
                return response.status, out, response.body
            except UpstreamError as exc:
                replica.healthy = False  # until its health check passes again
                replica.failures += 1
                log.warning("replica %s of %s failed: %s", replica.id, endpoint.name, exc)
            finally:
                replica.outstanding -= 1
        message = json.dumps({"error": f"endpoint {endpoint.name}: no replica answered "
                              f"({len(tried)} tried)"}).encode()
        return 502, [(b"content-type", b"application/json")], message

    def _maybe_shadow(self, endpoint: Endpoint, method: bytes, target: bytes,
                      headers: Headers, body: bytes) -> None:
        for version in endpoint.versions:
            if version.shadow_percent > 0 and random.random() * 100 < version.shadow_percent:
                ready = version.ready()
                if ready:
                    self._spawn(self._shadow(_least_outstanding(ready), method, target,
                                             headers, body, endpoint.name, version.name))

    async def _shadow(self, replica: Replica, method: bytes, target: bytes, headers: Headers,
                      body: bytes, endpoint: str, version: str) -> None:
        replica.outstanding += 1
        replica.requests += 1
        started = time.perf_counter()
        status = 502
        try:
            status = (await self._upstream.request(replica.host, replica.port, method, target,
                                                   headers, body)).status
        except Exception:  # a shadow's failure never reaches the caller
            replica.failures += 1
        finally:
            replica.outstanding -= 1
            self._metrics.observe(endpoint, f"{version} (shadow)", status,
                                  time.perf_counter() - started)

    # -- health -------------------------------------------------------------------------

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.health_interval)
            replicas = [(e, r) for e in self.endpoints.values() for v in e.versions
                        for r in v.replicas]
            results = await asyncio.gather(*(self._check(r) for _, r in replicas))
            for (endpoint, replica), healthy in zip(replicas, results, strict=True):
                replica.healthy = healthy
                if healthy:
                    endpoint.ready_event.set()

    async def _check(self, replica: Replica) -> bool:
        try:
            response = await self._upstream.request(replica.host, replica.port, b"GET",
                                                    b"/v2/health/ready", [], b"",
                                                    timeout=HEALTH_TIMEOUT)
        except (UpstreamError, OSError):
            return False
        return response.status == 200

    # -- admin: the table in, stats out ---------------------------------------------------

    async def _admin(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._authorized(scope, frozenset({self.admin_hash})):
            await _error(send, 401, "the router's admin API needs the platform token")
            return
        if scope["path"] == "/-/stats" and scope["method"] == "GET":
            await _reply(send, 200, json.dumps(self.stats()).encode())
        elif scope["path"] == "/-/routes" and scope["method"] == "PUT":
            body = await _read_body(receive, DEFAULT_MAX_BODY)
            try:
                self.apply_table(json.loads(body or b""))
            except (ValueError, KeyError, TypeError) as exc:
                await _error(send, 400, f"bad routing table: {exc}")
                return
            await _reply(send, 200, json.dumps({"version": self.table_version}).encode())
        elif scope["path"] == "/-/routes" and scope["method"] == "GET":
            await _reply(send, 200, json.dumps({"version": self.table_version}).encode())
        else:
            await _error(send, 405, f"{scope['method']} {scope['path']} is not allowed")

    def apply_table(self, table: dict[str, Any]) -> None:
        """Replace the routing table, keeping each known replica's counters and health."""
        known = {(e.name, r.id): r for e in self.endpoints.values() for v in e.versions
                 for r in v.replicas}
        endpoints: dict[str, Endpoint] = {}
        for item in table["endpoints"]:
            old = self.endpoints.get(item["name"])
            endpoint = old or Endpoint(name=item["name"])
            endpoint.token_hashes = frozenset(item.get("token_hashes", ()))
            endpoint.retry = bool(item.get("retry", True))
            endpoint.max_body_bytes = int(item.get("max_body_bytes", DEFAULT_MAX_BODY))
            endpoint.cold_start_timeout = float(item.get("cold_start_timeout", 120.0))
            limit = item.get("max_in_flight_per_replica")
            endpoint.max_in_flight_per_replica = None if limit is None else int(limit)
            versions = []
            for v in item.get("versions", ()):
                replicas = []
                for r in v.get("replicas", ()):
                    replica = known.get((endpoint.name, r["id"])) or Replica(
                        id=r["id"], url=r["url"], healthy=bool(r.get("healthy", True)))
                    replica.set_url(r["url"])
                    replica.state = r.get("state", "ready")
                    replicas.append(replica)
                versions.append(Version(name=str(v["name"]), weight=float(v.get("weight", 100)),
                                        shadow_percent=float(v.get("shadow_percent", 0)),
                                        replicas=replicas))
            endpoint.versions = versions
            endpoints[endpoint.name] = endpoint
            if any(v.ready() for v in endpoint.serving()):
                endpoint.ready_event.set()
        self.endpoints = endpoints
        self.table_version = str(table.get("version", ""))

    def stats(self) -> dict[str, Any]:
        return {"version": self.table_version, "time": time.time(), "endpoints": {
            e.name: {"in_flight": e.in_flight, "waiting": e.waiting, "requests": e.requests,
                     "errors": e.errors, "shed": e.shed, "cold_starts": e.cold_starts[-10:],
                     "replicas": {r.id: {"outstanding": r.outstanding, "requests": r.requests,
                                         "failures": r.failures, "healthy": r.healthy,
                                         "state": r.state}
                                  for v in e.versions for r in v.replicas}}
            for e in self.endpoints.values()}}

    # -- helpers ------------------------------------------------------------------------

    @staticmethod
    def _authorized(scope: Scope, allowed: frozenset[str]) -> bool:
        for key, value in scope["headers"]:
            if key == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer" and token:
                    digest = token_hash(token.strip())
                    return any(hmac.compare_digest(digest, h) for h in allowed)
        return False

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class _Metrics:
    """Prometheus text: requests and latency by endpoint/version/status, replicas, cold
    starts. Kept as plain counters: prometheus-client renders them on scrape."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("aip_router_requests", "Requests through the router",
                                ["endpoint", "version", "code"], registry=self.registry)
        self.latency = Histogram(
            "aip_router_request_seconds", "Request latency through the router", ["endpoint"],
            buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10),
            registry=self.registry)

    def observe(self, endpoint: str, version: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, version, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def render(self, router: Router) -> bytes:
        from prometheus_client import generate_latest

        lines = [generate_latest(self.registry).decode(),
                 "# HELP aip_endpoint_replicas Ready replicas by endpoint and version",
                 "# TYPE aip_endpoint_replicas gauge"]
        for endpoint in router.endpoints.values():
            for version in endpoint.versions:
                lines.append(f'aip_endpoint_replicas{{endpoint="{endpoint.name}",'
                             f'version="{version.name}"}} {len(version.ready())}')
            lines.append(f'aip_endpoint_in_flight{{endpoint="{endpoint.name}"}} '
                         f"{endpoint.in_flight}")
        return ("\n".join(lines) + "\n").encode()


def _least_outstanding(replicas: list[Replica]) -> Replica:
    fewest = min(r.outstanding for r in replicas)
    best = [r for r in replicas if r.outstanding == fewest]
    return best[0] if len(best) == 1 else random.choice(best)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None once it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _reply(send: Send, status: int, body: bytes,
                 content_type: str = "application/json",
                 headers: dict[str, str] | None = None) -> None:
    raw = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _error(send: Send, status: int, message: str,
                 headers: dict[str, str] | None = None) -> None:
    await _reply(send, status, json.dumps({"error": message}).encode(), headers=headers)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m aip.serving.router",
                                     description="AIP's serving gateway")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8480)
    parser.add_argument("--admin-token-file", required=True,
                        help="the platform token, which the control plane uses to push routes")
    parser.add_argument("--health-interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    import uvicorn

    with open(args.admin_token_file, encoding="utf-8") as handle:
        token = handle.read().strip()
    router = Router(token, health_interval=args.health_interval)
    uvicorn.run(router, host=args.host, port=args.port, log_level="warning", access_log=False,
                loop="uvloop", http="httptools", lifespan="on")


if __name__ == "__main__":
    main()
