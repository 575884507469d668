"""Streaming with hashing: the copy loop of every upload and download, the hash records, and
the reader that checks a download against its record when the stream ends.

A hash record is ``{"format": 1, "sha256": "<hex>", "size": <bytes>}`` (``store`` documents
where it lives). Progress callbacks receive the bytes moved since their last call.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any, Final

from aip.storage.errors import ArtifactCorrupted, CallerSideError

log = logging.getLogger("aip.storage")

Progress = Callable[[int], None]
CHUNK: Final = 1 << 20
RECORD_FORMAT: Final = 1


def chunks(stream: Any, *, caller: bool = False) -> Iterator[bytes]:
    """``stream.read`` in CHUNK pieces; with ``caller``, its failures are the caller's
    (``CallerSideError``), not the store's."""
    read = caller_side(stream.read) if caller else stream.read
    while chunk := read(CHUNK):
        yield chunk


def caller_side(function: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``function`` with its failures wrapped in CallerSideError."""
    def call(argument: Any) -> Any:
        try:
            return function(argument)
        except Exception as exc:
            raise CallerSideError(exc) from exc
    return call


def copy(pieces: Iterable[bytes], write: Callable[[bytes], Any], progress: Progress | None
         ) -> tuple[str, int]:
    """Write every piece, hashing as it passes; returns ``(sha256 hex, size)``."""
    digest = hashlib.sha256()
    size = 0
    for piece in pieces:
        write(piece)
        digest.update(piece)
        size += len(piece)
        if progress is not None:
            progress(len(piece))
    return digest.hexdigest(), size


def record_bytes(digest: str, size: int) -> bytes:
    return json.dumps({"format": RECORD_FORMAT, "sha256": digest, "size": size}).encode()


def parse_record(key: str, data: bytes) -> dict[str, Any] | None:
    """The record, or None (with a warning) when it is unreadable: then nothing is checked."""
    try:
        record = json.loads(data)
    except ValueError:
        record = None
    if not isinstance(record, dict) or not isinstance(record.get("sha256"), str):
        log.warning("ignoring the unreadable hash record of %r", key)
        return None
    return record


def verify(url: str, key: str, record: Mapping[str, Any], digest: str, size: int) -> None:
    """Raise ArtifactCorrupted unless what was read matches what was recorded."""
    expected_size, expected = record.get("size"), record.get("sha256")
    if expected == digest and expected_size in (None, size):
        return
    raise ArtifactCorrupted(
        f"artifact {key!r} in {url} is corrupted: read {size} bytes with sha256 {digest}, but "
        f"{expected_size} bytes with sha256 {expected} were recorded when it was stored; store "
        "it again (or delete it)", fields={"key": key})


class CheckedReader(io.RawIOBase):
    """A raw stream over an fsspec file that hashes what passes and, at the end, checks it
    against the record (None: nothing to check). Backend failures go through ``errors``."""

    def __init__(self, raw: Any, *, url: str, key: str, record: Mapping[str, Any] | None,
                 errors: Callable[[], AbstractContextManager[None]]) -> None:
        self._raw, self._url, self._key, self._record = raw, url, key, record
        self._errors = errors
        self._hash = hashlib.sha256()
        self._size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        with self._errors():
            data = self._raw.read(len(view))
        view[:len(data)] = data
        self._hash.update(data)
        self._size += len(data)
        if not data and self._record is not None and len(view) > 0:
            record, self._record = self._record, None  # check once
            verify(self._url, self._key, record, self._hash.hexdigest(), self._size)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()
