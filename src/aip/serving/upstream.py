"""The router's client to its replicas: keep-alive HTTP/1.1 over asyncio, parsed by httptools.

    pool = UpstreamPool()
    response = await pool.request("127.0.0.1", 9001, b"POST", b"/v2/models/m/infer",
                                  [(b"content-type", b"application/json")], body)
    response.status, response.headers, response.body
    await pool.close()

Why not aiohttp's client: on the router's hot path it cost about half of the router's
per-request time (its request/response objects, cookie jar, tracing hooks and stream
readers), and the router needs none of that. Its replicas are AIP's own servers on a trusted
network, speaking plain HTTP/1.1 with ``Content-Length`` or chunked bodies; a connection
carries one request at a time (no pipelining) and goes back to its replica's idle list when
the answer is complete.

Failures raise ``UpstreamError``: the replica refused the connection, closed it before the
answer was complete, or did not connect within ``connect_timeout``. A request on a reused
connection that the replica had closed while idle (its keep-alive timeout) is sent again once
on a fresh connection, before any byte of an answer arrived: the replica never saw it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

Headers = list[tuple[bytes, bytes]]
# Idle connections older than this are closed rather than reused: below uvicorn's default
# keep-alive timeout (5 s), so the replica never closes one under a request being sent.
IDLE_LIMIT = 4.0


class UpstreamError(ConnectionError):
    """The replica did not answer: refused, dropped the connection, or timed out."""


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    headers: Headers
    body: bytes


class UpstreamPool:
    def __init__(self, *, connect_timeout: float = 2.0) -> None:
        self.connect_timeout = connect_timeout
        self._idle: dict[tuple[str, int], deque[_Connection]] = {}
        self._open: set[_Connection] = set()

    async def request(self, host: str, port: int, method: bytes, target: bytes,
                      headers: Headers, body: bytes = b"",
                      timeout: float | None = None) -> UpstreamResponse:
        """Send one request and return the whole answer. ``timeout`` bounds the time from
        sending to the answer's last byte (None: no limit; inference may be slow)."""
        head = _request_head(method, target, host, port, headers, len(body))
        connection, reused = self._take(host, port), True
        if connection is None:
            connection, reused = await self._connect(host, port), False
        try:
            response = await connection.exchange(head, body, timeout)
        except _StaleConnection:
            if not reused:
                raise UpstreamError(f"{host}:{port} closed the connection") from None
            connection = await self._connect(host, port)
            try:
                response = await connection.exchange(head, body, timeout)
            except _StaleConnection:
                raise UpstreamError(f"{host}:{port} closed the connection") from None
        self._give_back(host, port, connection)
        return response

    async def close(self) -> None:
        for connection in list(self._open):
            connection.close()
        self._idle.clear()

    # -- helpers, in call order -----------------------------------------------------------

    def _take(self, host: str, port: int) -> _Connection | None:
        idle = self._idle.get((host, port))
        now = time.monotonic()
        while idle:
            connection = idle.pop()  # the most recently used: warm, least likely stale
            if connection.usable and now - connection.idle_since < IDLE_LIMIT:
                return connection
            connection.close()
        return None

    async def _connect(self, host: str, port: int) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(self._open), host, port),
                self.connect_timeout)
        except TimeoutError:
            raise UpstreamError(f"{host}:{port} did not accept a connection within "
                                f"{self.connect_timeout:g}s") from None
        except OSError as exc:
            raise UpstreamError(f"{host}:{port}: {exc.strerror or exc}") from None
        return connection

    def _give_back(self, host: str, port: int, connection: _Connection) -> None:
        if connection.usable:
            connection.idle_since = time.monotonic()
            self._idle.setdefault((host, port), deque()).append(connection)
        else:
            connection.close()


class _StaleConnection(UpstreamError):
    """The connection closed before any byte of the answer: the request can be sent again."""


class _Connection(asyncio.Protocol):
    def __init__(self, registry: set[_Connection]) -> None:
        self.registry = registry
        self.transport: asyncio.Transport | None = None
        self.idle_since = 0.0
        self.usable = False  # connected, not closed, the last answer complete and keep-alive
        self._parser: Any = None
        self._waiter: asyncio.Future[UpstreamResponse] | None = None
        self._headers: Headers = []
        self._body: list[bytes] = []
        self._received = False

    async def exchange(self, head: bytes, body: bytes,
                       timeout: float | None) -> UpstreamResponse:
        import httptools

        assert self.transport is not None
        self._parser = httptools.HttpResponseParser(self)
        self._headers, self._body, self._received = [], [], False
        self._waiter = asyncio.get_running_loop().create_future()
        self.usable = False
        if body and len(body) < 65536:
            self.transport.write(head + body)  # one segment for small requests
        else:
            self.transport.writelines([head, body] if body else [head])
        try:
            return await asyncio.wait_for(self._waiter, timeout)
        except TimeoutError:
            self.close()
            raise UpstreamError(f"no answer within {timeout:g}s") from None
        except asyncio.CancelledError:  # the caller went away: the answer has no reader
            self.close()
            raise

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        self.usable = True
        self.registry.add(self)

    def data_received(self, data: bytes) -> None:
        import httptools

        if self._parser is None:  # bytes nobody asked for: the connection is unusable
            self.close()
            return
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"malformed answer: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.usable = False
        self.registry.discard(self)
        if self._waiter is not None and not self._waiter.done():
            error = UpstreamError("the connection closed mid-answer") if self._received \
                else _StaleConnection("the connection closed before the answer")
            self._fail(error)

    # -- httptools callbacks ---------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        parser, self._parser = self._parser, None
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self.usable = bool(parser.should_keep_alive())
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(UpstreamResponse(parser.get_status_code(),
                                                     self._headers, body))

    # -- helpers -------------------------------------------------------------------------

    def close(self) -> None:
        self.usable = False
        if self.transport is not None:
            self.transport.close()

    def _fail(self, error: UpstreamError) -> None:
        self._parser = None
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)


def _request_head(method: bytes, target: bytes, host: str, port: int, headers: Headers,
                  length: int) -> bytes:
    lines = [method, b" ", target, b" HTTP/1.1\r\nhost: ", f"{host}:{port}".encode(),
             b"\r\ncontent-length: ", str(length).encode(), b"\r\n"]
    for name, value in headers:
        lines += [name, b": ", value, b"\r\n"]
    lines.append(b"\r\n")
    return b"".join(lines)
