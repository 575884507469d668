"""Reading replica logs: the last lines, or following them as they grow.

With several replicas, each line is prefixed with its replica's name ("[worker-1] ").
"""

from __future__ import annotations

import asyncio
import codecs
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

CHUNK = 64 * 1024
FOLLOW_POLL_SECONDS = 0.1


def tail(sources: Sequence[tuple[str, str]], lines: int | None, prefix: bool) -> str:
    """The last ``lines`` lines of each source (all when None), concatenated."""
    out: list[str] = []
    for name, path in sources:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                kept = deque(handle, maxlen=lines) if lines is not None else list(handle)
        except FileNotFoundError:
            continue
        out.extend(_prefixed(name, line, prefix) for line in kept)
    return "".join(out)


async def follow(
    sources: Sequence[tuple[str, str]], lines: int | None, prefix: bool,
    finished: Callable[[], bool],
) -> AsyncIterator[str]:
    """Stream what is there (or its last ``lines``), then new lines until ``finished()``
    is true and every file is drained."""
    offsets: dict[str, int] = {}
    decoders: dict[str, codecs.IncrementalDecoder] = {}
    partial: dict[str, str] = {}
    first = tail(sources, lines, prefix)
    if first:
        yield first
    for _name, path in sources:
        offsets[path] = _size(path)
    while True:
        done = finished()  # read before draining, so no line written before the end is lost
        got = False
        for name, path in sources:
            text = _read_from(path, offsets, decoders)
            if not text:
                continue
            got = True
            text = partial.pop(path, "") + text
            complete, _, rest = text.rpartition("\n")
            if rest:
                partial[path] = rest
            if complete:
                yield "".join(_prefixed(name, line + "\n", prefix)
                              for line in complete.split("\n"))
        if done and not got:
            leftovers = "".join(_prefixed(n, partial[p] + "\n", prefix)
                                for n, p in sources if partial.get(p))
            if leftovers:
                yield leftovers
            return
        if not got:
            await asyncio.sleep(FOLLOW_POLL_SECONDS)


def _prefixed(name: str, line: str, prefix: bool) -> str:
    return f"[{name}] {line}" if prefix else line


def _size(path: str) -> int:
    try:
        return Path(path).stat().st_size
    except FileNotFoundError:
        return 0


def _read_from(path: str, offsets: dict[str, int],
               decoders: dict[str, codecs.IncrementalDecoder]) -> str:
    """New text of ``path`` since its offset. Each file has its own incremental decoder, so
    a UTF-8 character cut by the chunk boundary is completed by the next read."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offsets.get(path, 0))
            data = handle.read(CHUNK)
    except FileNotFoundError:
        return ""
    offsets[path] = offsets.get(path, 0) + len(data)
    decoder = decoders.get(path)
    if decoder is None:
        decoder = decoders[path] = codecs.getincrementaldecoder("utf-8")("replace")
    return decoder.decode(data)
