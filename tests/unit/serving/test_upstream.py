"""The router's upstream client against real sockets on loopback: a tiny asyncio HTTP server
whose answers each test scripts (keep-alive, chunked, closing while idle or mid-answer,
never answering)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable

import pytest

from aip.serving.upstream import UpstreamError, UpstreamPool

Answer = Callable[[bytes], bytes | None]  # request head+body -> raw answer (None: hang up)


def in_loop(test: Callable[[], Awaitable[None]]) -> Callable[[], None]:
    @functools.wraps(test)
    def run() -> None:
        asyncio.run(test())  # type: ignore[arg-type]
    return run


def ok(body: bytes, *extra: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n" + b"".join(extra)
    return head + b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body


async def _until(condition: Callable[[], object], timeout: float) -> None:
    """Poll ``condition`` on the loop until it holds; fail after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.005)


class Server:
    """Reads one request at a time per connection (head, then content-length bytes) and
    writes ``answer(request)``; counts connections and requests."""

    def __init__(self, answer: Answer) -> None:
        self.answer, self.connections, self.requests = answer, 0, []
        self.writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for writer in self.writers:
            writer.close()
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                answer = self.answer(request)
                if answer is None:
                    writer.close()
                    return
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


@in_loop
async def test_requests_reuse_one_keep_alive_connection_and_carry_method_path_and_body() -> None:
    async with Server(lambda request: ok(request.split(b"\r\n\r\n", 1)[1])) as server:
        pool = UpstreamPool()
        answers = [await pool.request("127.0.0.1", server.port, b"POST", b"/v2/infer?x=1",
                                      [(b"content-type", b"application/json")], b"%d" % i)
                   for i in range(5)]
        await pool.close()

    assert [answer.body for answer in answers] == [b"0", b"1", b"2", b"3", b"4"]
    assert answers[0].status == 200
    assert (b"content-type", b"application/json") in answers[0].headers
    assert server.connections == 1
    assert server.requests[0].startswith(b"POST /v2/infer?x=1 HTTP/1.1\r\n")
    assert b"content-length: 1\r\n" in server.requests[0]


@in_loop
async def test_a_chunked_answer_is_read_whole() -> None:
    chunked = (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    async with Server(lambda request: chunked) as server:
        pool = UpstreamPool()
        answer = await pool.request("127.0.0.1", server.port, b"GET", b"/", [])
        await pool.close()

    assert answer.body == b"hello world"


@in_loop
async def test_concurrent_requests_each_get_their_own_connection_and_answer() -> None:
    async with Server(lambda request: ok(request.split(b"\r\n\r\n", 1)[1])) as server:
        pool = UpstreamPool()
        answers = await asyncio.gather(*(
            pool.request("127.0.0.1", server.port, b"POST", b"/", [], b"%d" % i)
            for i in range(8)))
        await pool.close()

    assert sorted(answer.body for answer in answers) == [b"%d" % i for i in range(8)]
    assert server.connections == 8


@in_loop
async def test_a_connection_the_replica_closed_while_idle_is_replaced_unseen() -> None:
    async with Server(lambda request: ok(b"fine", b"connection: keep-alive\r\n")) as server:
        pool = UpstreamPool()
        await pool.request("127.0.0.1", server.port, b"GET", b"/", [])
        for writer in server.writers:  # the replica's keep-alive timeout fires
            writer.transport.abort()
        answer = await pool.request("127.0.0.1", server.port, b"GET", b"/", [])
        await pool.close()

    assert answer.body == b"fine"
    assert server.connections == 2


@in_loop
async def test_a_refused_connection_is_an_upstream_error() -> None:
    async with Server(lambda request: ok(b"")) as server:
        port = server.port
    pool = UpstreamPool()

    with pytest.raises(UpstreamError, match=f"127.0.0.1:{port}"):
        await pool.request("127.0.0.1", port, b"GET", b"/", [])


@in_loop
async def test_a_replica_that_hangs_up_on_a_new_request_is_an_upstream_error() -> None:
    async with Server(lambda request: None) as server:
        pool = UpstreamPool()
        with pytest.raises(UpstreamError, match="closed"):
            await pool.request("127.0.0.1", server.port, b"POST", b"/", [], b"x")
        await pool.close()

    assert len(server.requests) == 1  # a fresh connection is not tried twice


@in_loop
async def test_an_answer_cut_off_midway_is_an_upstream_error() -> None:
    cut = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part"

    def answer(request: bytes) -> bytes:
        return cut

    async with Server(answer) as server:
        pool = UpstreamPool()
        # The timeout turns a lost race (nothing cut off: the client waits for the other 91
        # bytes) into a quick failure instead of a hang.
        task = asyncio.ensure_future(pool.request("127.0.0.1", server.port, b"GET", b"/", [],
                                                  timeout=5))
        await _until(lambda: server.requests, timeout=5)  # the part is written as it is recorded
        await asyncio.sleep(0.05)  # the client reads the part before the connection drops
        for writer in server.writers:
            writer.transport.abort()
        with pytest.raises(UpstreamError, match="mid-answer"):
            await task
        await pool.close()


@in_loop
async def test_no_answer_within_the_timeout_is_an_upstream_error() -> None:
    async with Server(lambda request: b"") as server:  # reads the request, never answers
        pool = UpstreamPool()
        with pytest.raises(UpstreamError, match=r"within 0\.2s"):
            await pool.request("127.0.0.1", server.port, b"GET", b"/", [], timeout=0.2)
        await pool.close()
