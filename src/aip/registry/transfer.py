"""The client's side of moving a model: the tar stream it uploads (the files plus the
manifest), and a download unpacked into a directory, every file checked against the sha256
the registry recorded.

    stream = upload_archive(prepare_model(Path("model.onnx")))   # TarStream: .size, iter()
    unpack_verified(chunks, Path("out"), version["files"])      # raises on any mismatch
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from aip.errors import AIPError
from aip.registry.flavors import PreparedModel
from aip.registry.tree import FileEntry, TarMember, TarStream, extract_member, read_tar
from aip.spec.model import MANIFEST_FILE

Progress = Callable[[int], None]


class ModelCorrupted(AIPError):
    """A downloaded model does not match what the registry recorded."""

    code = "model_corrupted"
    http_status = 502


def upload_archive(prepared: PreparedModel) -> TarStream:
    """The manifest first (the server reads it before the files), then the files."""
    members = [TarMember.of_bytes(MANIFEST_FILE, prepared.manifest_bytes())]
    members += [TarMember.of_file(file.path, file.source) for file in prepared.files]
    return TarStream(members)


def counted(chunks: Iterable[bytes], progress: Progress | None) -> Iterator[bytes]:
    for chunk in chunks:
        if progress is not None and chunk:
            progress(len(chunk))
        yield chunk


def unpack_verified(chunks: Iterable[bytes], destination: Path,
                    files: Sequence[Mapping[str, Any]], *,
                    progress: Progress | None = None) -> list[FileEntry]:
    """Unpack a version's tar into ``destination`` (absent or empty; made atomically: the
    tree appears whole or not at all). Every file must be in ``files`` with the same size and
    sha256, and every one of ``files`` must arrive; else ``ModelCorrupted`` and nothing is
    left behind."""
    destination = Path(destination)
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise AIPError(f"{destination} exists and is not an empty directory; download into a "
                       "new one", fields={"dest": "not empty"})
    expected = {str(item["path"]): str(item["sha256"]) for item in files}
    destination.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    try:
        entries = _unpack(_Reader(chunks), scratch, expected, progress)
        missing = sorted(set(expected) - {entry.path for entry in entries})
        if missing:
            raise ModelCorrupted(f"the download lacks {', '.join(missing[:5])}; try again")
        if destination.exists():
            destination.rmdir()
        os.replace(scratch, destination)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return entries


def _unpack(reader: _Reader, root: Path, expected: Mapping[str, str],
            progress: Progress | None) -> list[FileEntry]:
    entries: list[FileEntry] = []
    for path, content in read_tar(reader):  # type: ignore[arg-type]  # a file-like reader
        if path not in expected:
            raise ModelCorrupted(f"the download holds {path!r}, which the registry does not "
                                 "list for this version")
        target = root / path
        try:
            if isinstance(content, str):
                with (root / content).open("rb") as source:
                    entry = extract_member(source, target, expected[path])
            else:
                entry = extract_member(content, target, expected[path], progress)
        except OSError as exc:
            raise ModelCorrupted(f"downloaded {path} does not match the registry: {exc}; try "
                                 "again") from None
        entries.append(FileEntry(path, entry.size, entry.sha256))
    return entries


class _Reader:
    """A file-like ``read(n)`` over an iterator of byte chunks (an HTTP response)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = bytearray()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            size = len(self._buffer)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data
