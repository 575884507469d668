"""A model directory on the wire: a streamed tar written with its length known in advance,
read back member by member with every path checked.

    stream = TarStream([TarMember.of_bytes("aip-model.json", b"{...}"),
                        TarMember.of_file("model.onnx", Path("model.onnx"))])
    httpx.post(url, content=iter(stream), headers={"Content-Length": str(stream.size)})

    for entry in read_tar(body):        # each path checked; links resolved or refused
        ...

``tree_digest`` is the version's content address: the SHA-256 of its file index (one
"sha256  path" line per file, sorted), so two trees with the same files have one digest.
"""

from __future__ import annotations

import hashlib
import posixpath
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

from aip.errors import InvalidSpec

BLOCK: Final = tarfile.BLOCKSIZE
RECORD: Final = tarfile.RECORDSIZE
CHUNK: Final = 1024 * 1024
MAX_MEMBERS: Final = 100_000


@dataclass(frozen=True)
class FileEntry:
    """One file of a stored model version."""

    path: str
    size: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


def tree_digest(files: Iterable[FileEntry]) -> str:
    index = "".join(f"{file.sha256}  {file.path}\n"
                    for file in sorted(files, key=lambda file: file.path))
    return hashlib.sha256(index.encode()).hexdigest()


def member_path(name: str, field: str = "archive") -> str:
    """A tar member's name as a safe relative path ("./a//b" -> "a/b"); refuses absolute
    paths, '..', backslashes and control characters (a path escaping the model directory)."""
    problem = None
    if not name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        problem = "is absolute" if name else "is empty"
    elif "\\" in name or any(ord(char) < 32 for char in name):
        problem = "holds a backslash or a control character"
    elif ".." in name.split("/"):
        problem = "has a '..' part, which would leave the model directory"
    if problem:
        raise InvalidSpec(f"refused archive member {name!r}: it {problem}",
                          fields={field: f"{name}: {problem}"})
    return posixpath.normpath(name).lstrip("/") if name not in (".", "./") else "."


@dataclass(frozen=True)
class TarMember:
    """One file to send: ``size`` bytes, given (``data``) or read from ``opener()``."""

    path: str
    size: int
    opener: Callable[[], IO[bytes]] | None = None
    data: bytes | None = None

    @classmethod
    def of_file(cls, path: str, source: Path) -> TarMember:
        return cls(path, source.stat().st_size, opener=lambda: source.open("rb"))

    @classmethod
    def of_bytes(cls, path: str, data: bytes) -> TarMember:
        return cls(path, len(data), data=data)


class TarStream:
    """An uncompressed POSIX (pax) tar produced chunk by chunk, its total size known before
    the first byte (for Content-Length and progress bars). Iterating raises ``OSError`` if a
    file changes size while it is read."""

    def __init__(self, members: list[TarMember]) -> None:
        self.members = members
        self._headers = [_header(member.path, member.size) for member in members]
        body = sum(len(h) + _padded(m.size) for h, m in zip(self._headers, members, strict=True))
        self.size = _padded_to(body + 2 * BLOCK, RECORD)

    def __iter__(self) -> Iterator[bytes]:
        written = 0
        for header, member in zip(self._headers, self.members, strict=True):
            yield header
            size = member.size
            yield from _content(member, size)
            yield b"\0" * (_padded(size) - size)
            written += len(header) + _padded(size)
        yield b"\0" * (self.size - written)


def read_tar(stream: IO[bytes], field: str = "archive") -> Iterator[tuple[str, IO[bytes] | str]]:
    """The members of a tar stream (plain or compressed): ``(path, reader)`` for a file,
    ``(path, target)`` for a link to a file met earlier in the archive (the caller copies
    it). Directories are implied by their files and skipped. Raises ``InvalidSpec`` naming
    ``field`` for a member that would escape the directory or is no file."""
    seen: set[str] = set()
    try:
        archive = tarfile.open(fileobj=stream, mode="r|*")  # noqa: SIM115 - closed below
    except tarfile.TarError as exc:
        raise InvalidSpec(f"the upload is not a tar archive: {exc}",
                          fields={field: "not a tar archive"}) from None
    with archive:
        for count, member in enumerate(_members(archive, field)):
            if count >= MAX_MEMBERS:
                raise InvalidSpec(f"the archive has over {MAX_MEMBERS} members",
                                  fields={field: "too many members"})
            if member.isdir():
                member_path(member.name, field)
                continue
            path = member_path(member.name, field)
            if path == ".":
                raise InvalidSpec(f"refused archive member {member.name!r}: a file needs a "
                                  "name", fields={field: f"{member.name}: no name"})
            if path in seen:
                raise InvalidSpec(f"refused archive: {path!r} appears twice",
                                  fields={field: f"{path}: duplicate"})
            if member.issym() or member.islnk():
                yield path, _link_target(member, path, seen, field)
            elif member.isreg():
                reader = archive.extractfile(member)
                assert reader is not None
                yield path, reader
            else:
                raise InvalidSpec(f"refused archive member {path!r}: only files, directories "
                                  "and links to files are allowed",
                                  fields={field: f"{path}: not a regular file"})
            seen.add(path)


def _members(archive: tarfile.TarFile, field: str) -> Iterator[tarfile.TarInfo]:
    try:
        yield from archive
    except tarfile.TarError as exc:
        raise InvalidSpec(f"the archive is damaged: {exc}",
                          fields={field: "damaged tar archive"}) from None


def _link_target(member: tarfile.TarInfo, path: str, seen: set[str], field: str) -> str:
    raw = member.linkname
    if member.issym():
        if raw.startswith("/"):
            target = None
        else:
            joined = posixpath.normpath(posixpath.join(posixpath.dirname(path), raw))
            target = None if joined.startswith("../") or joined == ".." else joined
    else:
        target = member_path(raw, field) if raw and not raw.startswith("/") else None
    if target is None:
        raise InvalidSpec(f"refused archive member {path!r}: it links to {raw!r}, outside the "
                          "model directory", fields={field: f"{path}: link outside"})
    if target not in seen:
        raise InvalidSpec(f"refused archive member {path!r}: it links to {raw!r}, which is no "
                          "file before it in the archive",
                          fields={field: f"{path}: link to an unknown file"})
    return target


def _header(path: str, size: int) -> bytes:
    info = tarfile.TarInfo(path)
    info.size = size
    info.mode = 0o644
    info.type = tarfile.REGTYPE
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")


def _content(member: TarMember, size: int) -> Iterator[bytes]:
    if member.data is not None:
        yield member.data
        return
    assert member.opener is not None
    left = size
    with member.opener() as handle:
        while left > 0:
            chunk = handle.read(min(CHUNK, left))
            if not chunk:
                raise OSError(f"{member.path} shrank while it was sent; send it again")
            left -= len(chunk)
            yield chunk
        if handle.read(1):  # also lets a verifying reader check its hash at the end
            raise OSError(f"{member.path} grew while it was sent; send it again")


def _padded(size: int) -> int:
    return _padded_to(size, BLOCK)


def _padded_to(size: int, unit: int) -> int:
    return -(-size // unit) * unit


def extract_member(reader: IO[bytes], target: Path, expected_sha256: str | None = None,
                   progress: Any = None) -> FileEntry:
    """Write one member to ``target`` (its parent made), hashing as it goes; a mismatch with
    ``expected_sha256`` raises ``OSError`` and leaves no file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with target.open("wb") as handle:
        while chunk := reader.read(CHUNK):
            digest.update(chunk)
            handle.write(chunk)
            size += len(chunk)
            if progress is not None:
                progress(len(chunk))
    sha256 = digest.hexdigest()
    if expected_sha256 is not None and sha256 != expected_sha256:
        target.unlink()
        raise OSError(f"{target.name}: sha256 {sha256} differs from the registry's "
                      f"{expected_sha256}")
    return FileEntry(target.name, size, sha256)
