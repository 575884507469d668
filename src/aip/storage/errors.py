"""What the artifact store raises, and how a failure of the backend becomes one of them.

fsspec and s3fs report trouble as ``OSError`` subclasses with botocore exceptions as their
cause (or as bare botocore exceptions for network failures). ``storage_errors`` turns those
into AIP errors whose message names the store's URL and says what to do; the original stays
chained as ``__cause__`` for ``AIP_DEBUG=1``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from aip.errors import AIPError, Conflict, NotFound

CREDENTIALS_HINT = ("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the "
                    "environment of the process that uses the store")
# Modules whose exceptions mean "the backend failed", not "AIP has a bug".
_BACKEND_MODULES = ("botocore", "aiobotocore", "aiohttp", "s3fs", "fsspec", "urllib3")
_UNREACHABLE = ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError",
                "ReadTimeoutError", "ClientConnectorError", "ServerDisconnectedError",
                "ProxyConnectionError", "FSTimeoutError")
_NO_CREDENTIALS = ("NoCredentialsError", "PartialCredentialsError", "ProfileNotFound")


class StorageError(AIPError):
    """The artifact store cannot be used: a missing bucket, an unreachable endpoint, refused
    credentials, a full disk. The message names the store's URL and what to fix."""

    code = "storage_unavailable"
    http_status = 503


class ArtifactCorrupted(AIPError):
    """An artifact's bytes do not match the sha256 recorded when it was stored."""

    code = "artifact_corrupted"
    http_status = 500


class CallerSideError(Exception):
    """Carries a failure of the caller's side of a transfer (the upload body's stream, the
    local file being written) through ``storage_errors`` untranslated: it is not the store's
    fault. ``unwrapped`` re-raises the original."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original))
        self.original = original


@contextmanager
def unwrapped() -> Iterator[None]:
    """Re-raise the original of a CallerSideError (a client that went away stays a
    ConnectionResetError, a full local disk an OSError)."""
    try:
        yield
    except CallerSideError as failure:
        raise failure.original from None


@contextmanager
def storage_errors(url: str, action: str, key: str | None = None, *,
                   endpoint: str | None = None) -> Iterator[None]:
    """Run a backend call; re-raise its failure as NotFound or StorageError.

    ``action`` is what was being done ("read", "write", "list"); ``endpoint`` is the S3
    endpoint for the messages (None: AWS's own, or a local directory).
    """
    try:
        yield
    except (AIPError, CallerSideError):
        raise
    except Exception as exc:
        if not _is_backend_failure(exc):
            raise
        raise translate(exc, url, action, key, endpoint=endpoint) from exc


def translate(exc: BaseException, url: str, action: str, key: str | None, *,
              endpoint: str | None = None) -> AIPError:
    local = url.startswith("file://")
    where = f"{url} (endpoint {endpoint})" if endpoint else url
    names = {type(e).__name__ for e in _chain(exc)}
    detail = _first_line(exc)
    if names & set(_NO_CREDENTIALS):
        return StorageError(f"cannot {action} {where}: no credentials found; {CREDENTIALS_HINT}")
    if names & set(_UNREACHABLE) or isinstance(exc, ConnectionError | TimeoutError):
        return StorageError(
            f"cannot {action} {where}: the endpoint does not answer ({detail}); check that the "
            "object store is running and that storage.endpoint_url is right")
    if isinstance(exc, NotADirectoryError | IsADirectoryError | FileExistsError):
        return Conflict(
            f"cannot {action} {key!r} in {url}: in a directory store a key cannot be both an "
            "artifact and the prefix of other artifacts (a/b next to a/b/c); choose another "
            "key or delete the one in the way")
    if isinstance(exc, FileNotFoundError):
        if _missing_bucket(exc):
            bucket = url.removeprefix("s3://").split("/", 1)[0]
            return StorageError(
                f"cannot {action} {where}: bucket {bucket!r} does not exist; create it "
                f"(aws s3 mb s3://{bucket}) or fix storage.url")
        return NotFound(f"no artifact {key!r} in {url}" if key else f"nothing at {url}")
    if isinstance(exc, PermissionError):
        if local:
            return StorageError(f"cannot {action} {where}: permission denied ({detail}); make "
                                "the directory writable by this user or change storage.url")
        return StorageError(f"cannot {action} {where}: access denied ({detail}); check the "
                            f"credentials ({CREDENTIALS_HINT}) and the bucket's policy")
    return StorageError(f"cannot {action} {where}: {detail}")


def _is_backend_failure(exc: BaseException) -> bool:
    if isinstance(exc, OSError | TimeoutError):
        return True
    return any(type(e).__module__.split(".")[0] in _BACKEND_MODULES for e in _chain(exc))


def _missing_bucket(exc: BaseException) -> bool:
    for error in _chain(exc):
        response = getattr(error, "response", None)
        if isinstance(response, dict) and response.get("Error", {}).get("Code") == "NoSuchBucket":
            return True
    return "bucket does not exist" in str(exc).lower()


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
