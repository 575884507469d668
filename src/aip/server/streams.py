"""Streaming request and response bodies for routes that move files: an upload body read
as a blocking file (for code in a worker thread, e.g. the artifact store's ``put_stream``),
and a file served in chunks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import IO

import anyio.from_thread

CHUNK = 1 << 20


class BodyReader:
    """A blocking, file-like view of the request body for code in a worker thread: each read
    pulls chunks from the event loop as needed."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = bytearray()
        self._done = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while not self._done and (size < 0 or len(self._buffer) < size):
            chunk = anyio.from_thread.run(self._next)
            if chunk is None:
                self._done = True
            else:
                self._buffer += chunk
        if size < 0 or size >= len(self._buffer):
            data = bytes(self._buffer)
            self._buffer.clear()
            return data
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def drain(self) -> None:
        """Read and drop the rest of the body (a client that went away ends it too)."""
        try:
            while not self._done:
                self._buffer.clear()
                self.read(CHUNK)
        except Exception:
            self._done = True
        self._buffer.clear()

    async def _next(self) -> bytes | None:
        try:
            return await self._chunks.__anext__()
        except StopAsyncIteration:
            return None


def chunks(stream: IO[bytes]) -> Iterator[bytes]:
    with stream:
        while chunk := stream.read(CHUNK):
            yield chunk
