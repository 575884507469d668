"""Following logs: lines arrive whole, and a UTF-8 character split across reads survives."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aip.server import logs


def _follow(path: Path, writes: list[bytes]) -> str:
    async def run() -> str:
        pending = list(writes)

        def finished() -> bool:
            if pending:
                with path.open("ab") as handle:
                    handle.write(pending.pop(0))
                return False
            return True

        return "".join([chunk async for chunk in logs.follow(
            [("worker-0", str(path))], None, False, finished)])

    return asyncio.run(run())


def test_a_character_split_between_writes_arrives_intact(tmp_path: Path) -> None:
    path = tmp_path / "worker-0.log"
    path.write_bytes(b"")
    text = "größe 测试\n".encode()
    cut = text.index("测".encode()) + 1  # in the middle of a three-byte character
    assert _follow(path, [text[:cut], text[cut:]]) == "größe 测试\n"


def test_a_character_split_by_the_chunk_size_arrives_intact(tmp_path: Path) -> None:
    path = tmp_path / "worker-0.log"
    path.write_bytes(b"")
    line = ("x" * (logs.CHUNK - 1) + "测\n").encode()  # "测" straddles the chunk boundary
    assert _follow(path, [line]) == "x" * (logs.CHUNK - 1) + "测\n"


def test_tail_prefixes_lines_with_the_replica(tmp_path: Path) -> None:
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_text("1\n2\n3\n")
    b.write_text("x\n")
    assert logs.tail([("worker-0", str(a)), ("worker-1", str(b))], 2, True) == (
        "[worker-0] 2\n[worker-0] 3\n[worker-1] x\n")
