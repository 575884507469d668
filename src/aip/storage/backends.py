"""What differs between the backends of the artifact store: how a URL becomes an fsspec
filesystem and a root path, the S3 client settings, how a half-written file is dropped, and
the tidying a directory needs that an object store does not.

``fsspec`` and ``s3fs`` are imported here, when a store is built, never at ``aip`` import.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from aip.errors import InvalidSpec
from aip.storage.errors import StorageError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

log = logging.getLogger("aip.storage")

PART_SIZE: Final = 8 << 20  # S3 multipart part and read-ahead block (S3's minimum is 5 MiB)
# Fail fast when the endpoint is down instead of botocore's minute-long default.
S3_CLIENT_CONFIG: Final[Mapping[str, Any]] = {
    "connect_timeout": 5, "read_timeout": 60, "retries": {"mode": "standard", "max_attempts": 3}}
S3_READ_OPTIONS: Final[Mapping[str, Any]] = {"block_size": PART_SIZE, "cache_type": "readahead"}
S3_WRITE_OPTIONS: Final[Mapping[str, Any]] = {"block_size": PART_SIZE}


def parse_url(url: str) -> tuple[str, str, str]:
    """``(protocol, root path, canonical URL)``; a plain path is a local directory, made
    absolute. The root has no trailing '/'."""
    if not url or not url.strip():
        raise InvalidSpec("the artifact store's URL is empty; give a directory or "
                          "s3://bucket/prefix")
    if any(char in url for char in "*?[]"):
        raise InvalidSpec(f"artifact store URL {url!r} contains one of * ? [ ] (pattern "
                          "characters); choose a directory or prefix without them")
    scheme, separator, rest = url.partition("://")
    if not separator or scheme in ("file", "local"):
        path = Path(rest if separator else url).expanduser().resolve()
        return "file", path.as_posix().rstrip("/") or "/", f"file://{path.as_posix()}"
    root = rest.strip("/")
    if not root:
        raise InvalidSpec(f"artifact store URL {url!r} names no bucket; use "
                          f"{scheme}://bucket/prefix")
    return scheme, root, f"{scheme}://{root}"


def make_filesystem(protocol: str, options: Mapping[str, Any], url: str) -> AbstractFileSystem:
    """The fsspec filesystem of ``protocol``; ``options`` as ``ArtifactStore`` documents."""
    import fsspec

    if protocol == "file":
        return fsspec.filesystem("file", auto_mkdir=True)
    kwargs = s3_options(options) if protocol == "s3" else dict(options)
    try:
        return fsspec.filesystem(protocol, **kwargs)
    except ImportError as exc:
        extra = " (pip install 'aip[s3]')" if protocol == "s3" else ""
        raise StorageError(f"cannot open {url}: {exc}{extra}") from exc
    except ValueError as exc:
        raise InvalidSpec(f"cannot open {url}: {exc}") from exc


def s3_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """s3fs's options, with our ``region`` and fail-fast client settings folded in."""
    kwargs = dict(options)
    region = kwargs.pop("region", None)
    client_kwargs = dict(kwargs.pop("client_kwargs", None) or {})
    if region:
        client_kwargs.setdefault("region_name", region)
    kwargs["client_kwargs"] = client_kwargs
    kwargs["config_kwargs"] = {**S3_CLIENT_CONFIG, **(kwargs.pop("config_kwargs", None) or {})}
    kwargs.setdefault("use_listings_cache", False)  # other nodes write too: always ask
    return kwargs


def abandon(handle: Any, *, local: bool) -> None:
    """Drop a half-written fsspec file without committing it (S3: abort the upload)."""
    try:
        if local:
            handle.close()  # the caller removes the staged file
        else:
            handle.discard()
            handle.closed = True  # close() would flush and complete the upload
    except Exception:  # the original failure matters more
        log.debug("could not abandon %s cleanly", handle, exc_info=True)


def modified(details: Mapping[str, Any]) -> float | None:
    """Seconds since the epoch from fsspec's details (``mtime`` local, ``LastModified`` S3)."""
    value = details.get("mtime", details.get("LastModified"))
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value) if isinstance(value, int | float) else None


def prune_empty_directories(paths: Sequence[str], root: Path) -> None:
    """Remove the directories that deleting ``paths`` left empty, up to ``root``."""
    for directory in sorted({Path(p).parent for p in paths}, key=lambda p: -len(p.parts)):
        while directory != root and directory.is_relative_to(root):
            try:
                directory.rmdir()
            except OSError:
                break
            directory = directory.parent
