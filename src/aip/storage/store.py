"""The artifact store: one interface over fsspec for a local directory or S3-compatible object
storage, so that any node can read any model that any job wrote.

    store = ArtifactStore("/data/aip-artifacts")                      # or file:///data/...
    store = ArtifactStore("s3://ml/aip", options={"endpoint_url": "http://minio:9000",
                                                  "region": "us-east-1"})
    info = store.put_file(Path("model.onnx"), "models/iris/3/model.onnx", progress=bar)
    store.get_dir("models/iris/3", Path("/tmp/iris"))                # sha256 verified
    with store.open("models/iris/3/model.onnx") as stream: ...        # streamed, verified

Keys are relative POSIX paths checked by ``check_key``: none leaves the store's prefix.
Transfers are streamed in 1 MiB chunks (8 MiB multipart parts on S3), never whole in memory;
``progress`` callbacks receive the bytes moved since the last call.

Content hashes. Every write computes the sha256 while it streams and records it, with the
size, in a small JSON file under the store's reserved ``.aip/sha256/`` tree, mirroring the
key: ``s3://ml/aip/.aip/sha256/models/iris/3/model.onnx`` holds
``{"format": 1, "sha256": "…", "size": 1234}``. A record is an ordinary object, so the scheme
works the same on a directory, S3 or any fsspec backend, survives copies made with
``aws s3 sync``, and needs no index that concurrent writers would have to lock. A write
forgets the old record first and records the new one after the data is in place, so a reader
sees either no hash (nothing to verify) or the right one. Reads verify size and sha256
when a record exists and raise ``ArtifactCorrupted`` otherwise.

Atomicity. On S3 an object appears only when its upload completes; an upload that fails is
aborted, never committed half-written. In a directory, writes go to ``.aip/staging/`` and are
renamed into place. Downloads go to a temporary file beside the destination and are renamed
once verified. Two writers of one key at once: the last complete upload wins, and the other's
hash record may survive it (verification then reports the mismatch; write the key again).

Backends differ in one way: in a directory a key cannot be both an artifact and the prefix of
others (``a/b`` next to ``a/b/c``), which raises Conflict; S3 allows it.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Final, cast

from aip.errors import InvalidSpec, NotFound
from aip.storage import backends, transfer
from aip.storage.errors import storage_errors, unwrapped
from aip.storage.keys import RESERVED, check_key, check_prefix, join, key_problem
from aip.storage.transfer import CHUNK, Progress
from aip.storage.tree import files_under

if TYPE_CHECKING:
    from aip.storage.config import StorageConfig

HASHES: Final = f"{RESERVED}/sha256"
STAGING: Final = f"{RESERVED}/staging"


@dataclass(frozen=True)
class ArtifactInfo:
    """One stored object. ``sha256`` is None when no hash was recorded (written by another
    tool); ``modified`` is seconds since the epoch (the store's clock, or ours right after a
    write)."""

    key: str
    size: int
    sha256: str | None
    modified: float | None


class ArtifactStore:
    """Artifacts under one URL. Every method is blocking and safe to call from several
    threads; backend failures raise ``StorageError`` (or ``NotFound`` for a missing key) with
    the URL and what to do."""

    url: str

    def __init__(self, url: str, *, options: Mapping[str, Any] | None = None) -> None:
        """``url``: a directory (relative ones resolve against the working directory),
        ``file:///dir``, ``s3://bucket/prefix`` or another fsspec URL. ``options`` go to the
        fsspec filesystem; for S3 they are s3fs's (``key``, ``secret``, ``profile``,
        ``endpoint_url``, ``client_kwargs``, ``config_kwargs``…) plus ``region``. No network
        call happens here (see ``check``)."""
        self.protocol, self._root, self.url = backends.parse_url(url)
        options = dict(options or {})
        self.endpoint_url: str | None = options.get("endpoint_url")
        self._local = self.protocol == "file"
        s3 = self.protocol == "s3"
        self._read_options = dict(backends.S3_READ_OPTIONS) if s3 else {}
        self._write_options = dict(backends.S3_WRITE_OPTIONS) if s3 else {}
        self.fs = backends.make_filesystem(self.protocol, options, self.url)
        if not self._local:  # the backend's own spelling: bucket/prefix for S3
            self._root = str(self.fs._strip_protocol(self.url)).rstrip("/")

    def __repr__(self) -> str:
        return f"ArtifactStore({self.url!r})"

    def url_of(self, key: str) -> str:
        """The full URL of ``key`` (``s3://bucket/prefix/key``), for messages and for readers
        that open it with fsspec themselves."""
        return f"{self.url}/{check_key(key)}"

    # -- writing --------------------------------------------------------------------------

    def put_file(self, local: Path, key: str, *, progress: Progress | None = None
                 ) -> ArtifactInfo:
        """Upload one local file to ``key`` (replacing it), streamed; records its sha256."""
        key = check_key(key)
        try:
            source = open(local, "rb")  # noqa: SIM115 - closed below, errors named first
        except OSError as exc:
            raise NotFound(f"cannot read {local}: {exc.strerror or exc}") from exc
        with source:
            return self.put_stream(source, key, progress=progress)

    def put_stream(self, stream: BinaryIO, key: str, *, progress: Progress | None = None
                   ) -> ArtifactInfo:
        """Upload everything ``stream.read(n)`` yields to ``key``, chunk by chunk, never all
        in memory (an HTTP request body goes straight through). Records its sha256."""
        key = check_key(key)
        with unwrapped(), self._errors("write", key):
            self._forget_record(key)
            pieces = transfer.chunks(stream, caller=True)
            digest, size = self._write(self._path(key), pieces, progress)
            self._write_record(key, digest, size)
        return ArtifactInfo(key, size, digest, time.time())

    def put_bytes(self, data: bytes, key: str) -> ArtifactInfo:
        """Small objects (a manifest): ``put_stream`` of ``data``."""
        return self.put_stream(io.BytesIO(data), key)

    def put_dir(self, local_dir: Path, prefix: str, *, progress: Progress | None = None
                ) -> list[ArtifactInfo]:
        """Upload every file under ``local_dir`` to ``prefix/<relative path>`` ("" for the
        store's root). Symbolic links that leave ``local_dir`` are refused (``tree``); all
        keys are checked before the first byte moves."""
        prefix = check_prefix(prefix)
        files = [(check_key(join(prefix, relative)), path)
                 for relative, path in files_under(local_dir)]
        return [self.put_file(path, key, progress=progress) for key, path in files]

    # -- reading --------------------------------------------------------------------------

    def get_file(self, key: str, local: Path, *, progress: Progress | None = None,
                 verify: bool = True) -> ArtifactInfo:
        """Download ``key`` to ``local`` (created or replaced atomically), streamed. With
        ``verify`` and a recorded hash, a mismatch raises ArtifactCorrupted and leaves
        ``local`` untouched."""
        key = check_key(key)
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        with unwrapped(), self._errors("read", key):
            record = self._read_record(key) if verify else None
            details = self._file_details(key)
            handle, partial = tempfile.mkstemp(prefix=f".{local.name}.", suffix=".part",
                                               dir=local.parent)
            try:
                with os.fdopen(handle, "wb") as out, self._open_raw(key) as source:
                    digest, size = transfer.copy(
                        transfer.chunks(source), transfer.caller_side(out.write), progress)
                if record is not None:
                    transfer.verify(self.url, key, record, digest, size)
                os.replace(partial, local)
            except BaseException:
                Path(partial).unlink(missing_ok=True)
                raise
        return ArtifactInfo(key, size, digest, backends.modified(details))

    def get_dir(self, prefix: str, local_dir: Path, *, progress: Progress | None = None
                ) -> list[ArtifactInfo]:
        """Download every artifact under ``prefix/`` to ``local_dir/<rest of key>``. Raises
        NotFound when nothing is stored under the prefix."""
        prefix = check_prefix(prefix)
        entries = [entry for entry in self.list(prefix, hashes=False) if entry.key != prefix]
        if not entries:
            raise NotFound(f"no artifacts under {prefix or '(root)'!r} in {self.url}")
        root = Path(local_dir).resolve()
        downloaded = []
        for entry in entries:
            destination = root / (entry.key[len(prefix) + 1:] if prefix else entry.key)
            if not destination.resolve().is_relative_to(root):  # a symlink already there
                raise InvalidSpec(f"{destination} leads outside {root} (a symbolic link in "
                                  "the way); download into an empty directory")
            downloaded.append(self.get_file(entry.key, destination, progress=progress))
        return downloaded

    def open(self, key: str, *, verify: bool = True) -> BinaryIO:
        """A streaming reader of ``key`` (for an API response). With ``verify`` and a recorded
        hash, reading to the end raises ArtifactCorrupted on a mismatch, so a corrupted
        download fails instead of completing. Close it (it is a context manager)."""
        key = check_key(key)
        with self._errors("read", key):
            record = self._read_record(key) if verify else None
            self._file_details(key)  # NotFound for a prefix or an absent key, now
            raw = self._open_raw(key)
        reader = transfer.CheckedReader(raw, url=self.url, key=key, record=record,
                                        errors=partial(self._errors, "read", key))
        return cast(BinaryIO, io.BufferedReader(reader, buffer_size=CHUNK))

    def read_bytes(self, key: str, *, verify: bool = True) -> bytes:
        """A small object whole (a manifest); verified like ``open``."""
        with self.open(key, verify=verify) as stream:
            return stream.read()

    # -- metadata -------------------------------------------------------------------------

    def info(self, key: str) -> ArtifactInfo:
        """Size, recorded sha256 and modification time of ``key``; NotFound if absent."""
        key = check_key(key)
        with self._errors("read", key):
            details = self._file_details(key)
            record = self._read_record(key)
        sha256 = record.get("sha256") if record else None
        return ArtifactInfo(key, int(details["size"]), sha256, backends.modified(details))

    def exists(self, key: str) -> bool:
        try:
            self.info(key)
        except NotFound:
            return False
        return True

    def list(self, prefix: str = "", *, hashes: bool = True) -> list[ArtifactInfo]:
        """Artifacts whose key is ``prefix`` or starts with ``prefix/`` ("" for all), sorted
        by key. ``hashes=False`` skips reading the hash records (one read each)."""
        prefix = check_prefix(prefix)
        with self._errors("list", prefix or None):
            found = self._find(prefix)
            records = self._read_records(list(found)) if hashes else {}
        return [ArtifactInfo(key, int(details.get("size") or 0),
                             (records.get(key) or {}).get("sha256"), backends.modified(details))
                for key, details in sorted(found.items())]

    def delete(self, key_or_prefix: str) -> int:
        """Delete the artifact ``key_or_prefix`` and every artifact under it, with their hash
        records; returns how many artifacts went. Deleting what is absent returns 0."""
        key = check_key(key_or_prefix)
        with self._errors("delete", key):
            found = self._find(key)
            self._remove([self._path(k) for k in found])
            records = {self._record_path(key), *self.fs.find(self._record_path(key))}
            self._remove(sorted(path for path in records if path.startswith(f"{self._root}/")))
        return len(found)

    def check(self) -> None:
        """Prove the store answers (one listing request; a directory is created): raises
        StorageError naming the URL and the fix otherwise. For ``aip up`` and health checks."""
        with self._errors("list", None):
            if self._local:
                Path(self._root).mkdir(parents=True, exist_ok=True)
                if not os.access(self._root, os.W_OK):
                    raise PermissionError(f"{self._root} is not writable")
            elif self.protocol == "s3":
                bucket, _, prefix = self._root.partition("/")
                self.fs.call_s3("list_objects_v2", Bucket=bucket,
                                Prefix=f"{prefix}/" if prefix else "", MaxKeys=1)
            else:
                self.fs.ls(self._root)

    # -- helpers --------------------------------------------------------------------------

    def _errors(self, action: str, key: str | None) -> AbstractContextManager[None]:
        return storage_errors(self.url, action, key, endpoint=self.endpoint_url)

    def _path(self, key: str) -> str:
        return f"{self._root}/{key}"

    def _record_path(self, key: str) -> str:
        return f"{self._root}/{HASHES}/{key}"

    def _file_details(self, key: str) -> dict[str, Any]:
        details = cast(dict[str, Any], self.fs.info(self._path(key)))
        if details.get("type") != "file":
            raise NotFound(f"{key!r} in {self.url} is a prefix of other artifacts, not an "
                           "artifact; list it or download it as a directory")
        return details

    def _open_raw(self, key: str) -> Any:
        return self.fs.open(self._path(key), "rb", **self._read_options)

    def _write(self, path: str, pieces: Iterable[bytes], progress: Progress | None
               ) -> tuple[str, int]:
        """Stream ``chunks`` to ``path``; visible only once complete. Returns (sha256, size)."""
        target = f"{self._root}/{STAGING}/{uuid.uuid4().hex}" if self._local else path
        handle = self.fs.open(target, "wb", **self._write_options)
        try:
            digest, size = transfer.copy(pieces, handle.write, progress)
            handle.close()
            if self._local:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                os.replace(target, path)
        except BaseException:
            backends.abandon(handle, local=self._local)
            if self._local:
                Path(target).unlink(missing_ok=True)
            raise
        return digest, size

    def _write_record(self, key: str, digest: str, size: int) -> None:
        self._write(self._record_path(key), [transfer.record_bytes(digest, size)], None)

    def _forget_record(self, key: str) -> None:
        try:
            self.fs.rm_file(self._record_path(key))
        except FileNotFoundError:
            pass

    def _read_record(self, key: str) -> dict[str, Any] | None:
        try:
            return transfer.parse_record(key, self.fs.cat_file(self._record_path(key)))
        except FileNotFoundError:
            return None

    def _read_records(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not keys:
            return {}
        paths = {self._record_path(key): key for key in keys}
        if self._local:  # fsspec's batch cat would expand the paths as patterns first
            contents = {}
            for path in paths:
                try:
                    contents[path] = self.fs.cat_file(path)
                except FileNotFoundError:
                    pass
        else:
            contents = self.fs.cat(list(paths), on_error="omit")
        records = {paths[path]: transfer.parse_record(paths[path], data)
                   for path, data in contents.items() if path in paths}
        return {key: record for key, record in records.items() if record is not None}

    def _find(self, prefix: str) -> dict[str, dict[str, Any]]:
        """key -> fsspec details of the files that are ``prefix`` or under ``prefix/``."""
        base = self._path(prefix) if prefix else self._root
        found: dict[str, dict[str, Any]] = {}
        for path, details in self.fs.find(base, detail=True).items():
            key = path[len(self._root) + 1:] if path.startswith(f"{self._root}/") else None
            if key is None or key.split("/", 1)[0] == RESERVED or key_problem(key):
                continue  # the store's records, or an object another tool named oddly
            if key.startswith(f"{prefix}/") or not prefix:
                found[key] = details
        if prefix:  # an object named exactly ``prefix`` (find skips it when it has children)
            try:
                details = self.fs.info(base)
            except FileNotFoundError:
                pass
            else:
                if details.get("type") == "file":
                    found[prefix] = details
        return found

    def _remove(self, paths: Sequence[str]) -> None:
        if not paths:
            return
        if not self._local:
            self.fs.rm(paths)
            return
        for path in paths:
            try:
                Path(path).unlink(missing_ok=True)
            except IsADirectoryError:  # the record "path" of a prefix; emptied and pruned
                pass
        backends.prune_empty_directories(paths, Path(self._root))


def store_from_config(config: StorageConfig, home: Path) -> ArtifactStore:
    """The store the config's ``storage:`` section names (default: ``home/artifacts``)."""
    url = config.resolved_url(home)
    options = config.options() if url.startswith("s3://") else {}
    return ArtifactStore(url, options=options)


