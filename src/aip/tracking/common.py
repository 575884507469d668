"""What every part of tracking shares: the limits and checks on keys, steps, params and
artifact names (the in-job SDK and the server apply the same ones), the errors, and the
``Sink`` contract a tracker delivers through.

It imports nothing else of ``aip.tracking``, so the tracker (``delivery``), the spill files
(``spill``), the HTTP sink (``http_sink``) and the server's routes all build on it without
import cycles.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

from aip.errors import AIPError

KEY_PATTERN = re.compile(r"[A-Za-z0-9_\-./ :]{1,250}")
MAX_PARAM_VALUE_LENGTH = 6000
MAX_STEP = 2**63 - 1
MAX_BATCH = 10_000  # points per request: the server's limit
ARTIFACT_CHUNK = 1 << 20  # bytes read or written at a time when streaming artifacts
ARTIFACT_SHA256_HEADER = "X-AIP-SHA256"  # a download's sha256 (hex), to check it arrived whole

Point = tuple[str, int, float, float]  # key, step, value, time


class InvalidTrackingData(AIPError, ValueError):
    """A metric, param or artifact the SDK or the server refuses (bad key, value or path)."""

    code = "invalid_tracking_data"
    http_status = 422


class Unavailable(Exception):
    """The server did not take the data: keep it and try again later."""


class Rejected(Exception):
    """The server refused the data: sending it again would not help."""


class Sink(Protocol):
    """Where a tracker sends data. Every method blocks until the server answered, and raises
    ``Unavailable`` (keep the data, retry later) or ``Rejected`` (drop it)."""

    def send_metrics(self, points: list[Point], rank: int) -> None: ...

    def send_params(self, params: dict[str, str]) -> None: ...

    def upload(self, path: Path, name: str) -> None:
        """Upload one file as the job's artifact ``name``."""

    def close(self) -> None: ...


def check_key(key: object, what: str = "metric") -> str:
    """``key`` if it is a valid metric or param key; else ``InvalidTrackingData``."""
    if isinstance(key, str) and KEY_PATTERN.fullmatch(key):
        return key
    raise InvalidTrackingData(
        f"{what} key {key!r} must be 1-250 letters, digits, spaces or _-./:",
        fields={"key": f"invalid {what} key"})


def check_step(step: object) -> int:
    if isinstance(step, bool) or not hasattr(step, "__index__"):
        raise InvalidTrackingData(f"step {step!r} must be an integer >= 0",
                                  fields={"step": "not an integer"})
    value = int(step)  # numpy and torch integers too
    if not 0 <= value <= MAX_STEP:
        raise InvalidTrackingData(f"step {value} must be between 0 and 2**63-1",
                                  fields={"step": "out of range"})
    return value


def param_value(key: str, value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_PARAM_VALUE_LENGTH:
        raise InvalidTrackingData(
            f"param {key!r} is {len(text)} characters long; at most {MAX_PARAM_VALUE_LENGTH}",
            fields={key: "value too long"})
    return text


def check_artifact_name(name: str) -> str:
    parts = name.split("/")
    if (not name or len(name) > 1024 or name.startswith("/") or "\\" in name
            or any(part in ("", ".", "..") for part in parts) or parts[0] == ".aip"
            or any(ord(char) < 32 or char in "*?[]" for char in name)):
        raise InvalidTrackingData(
            f"artifact name {name!r} must be a relative path of '/'-separated names, without "
            "'.' or '..' parts nor any of * ? [ ]", fields={"name": "invalid artifact name"})
    return name


def artifact_files(source: Path, name: str) -> list[tuple[Path, str]]:
    """The files to upload for ``source`` as artifact ``name``: itself, or a directory's
    files (recursively, in path order) as ``name/<relative path>``."""
    if not source.is_dir():
        return [(source, name)]
    return [(file, f"{name}/{file.relative_to(source).as_posix()}")
            for file in sorted(source.rglob("*")) if file.is_file()]
