"""Artifact keys: relative POSIX paths that can never leave the store's prefix.

    check_key("models/iris/3/model.onnx")     # returned unchanged
    check_key("../etc/passwd")                # InvalidSpec naming the key and the rule
    check_prefix("models/iris/")              # "models/iris"; "" is the whole store

A key is one or more names joined by ``/``. No name is empty, ``.`` or ``..``; a key has no
backslash, no control character (NUL included) and none of ``* ? [ ]`` (fsspec would expand
them as a pattern, and a delete of ``a*`` must not remove ``ab``). The first name may not be
``.aip``: the store keeps its own records (content hashes, staged uploads) there. At most
1024 bytes, S3's limit.
"""

from __future__ import annotations

from typing import Final

from aip.errors import InvalidSpec

RESERVED: Final = ".aip"
MAX_KEY_BYTES: Final = 1024
EXAMPLE: Final = "models/iris/3/model.onnx"
_PATTERN_CHARACTERS: Final = frozenset("*?[]")


def check_key(key: str) -> str:
    """Return ``key`` if it is a valid artifact key; raise InvalidSpec saying why not."""
    problem = key_problem(key)
    if problem:
        raise InvalidSpec(
            f"invalid artifact key {key!r}: {problem}; use a relative path of names joined by "
            f"'/', such as {EXAMPLE}", fields={"key": problem})
    return key


def check_prefix(prefix: str) -> str:
    """A prefix is a key, or "" for the whole store; one trailing ``/`` is dropped."""
    if prefix in ("", "/"):
        return ""
    return check_key(prefix[:-1] if prefix.endswith("/") else prefix)


def key_problem(key: object) -> str | None:
    """What is wrong with ``key``, or None when it is valid."""
    if not isinstance(key, str):
        return f"must be a string, not {type(key).__name__}"
    if not key:
        return "it is empty"
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        return f"it is longer than {MAX_KEY_BYTES} bytes"
    if any(ord(char) < 32 or ord(char) == 127 for char in key):
        return "it contains a control character (NUL, newline, ...)"
    if "\\" in key:
        return "it contains a backslash; separate names with '/'"
    if _PATTERN_CHARACTERS.intersection(key):
        return "it contains one of * ? [ ] (pattern characters)"
    if key.startswith("/"):
        return "it is absolute; keys are relative to the store"
    parts = key.split("/")
    if any(part == "" for part in parts):
        return "it has an empty name ('//' or a trailing '/')"
    if any(part in (".", "..") for part in parts):
        return "it has a '.' or '..' name, which could leave the store's prefix"
    if parts[0] == RESERVED:
        return f"a key may not start with {RESERVED!r}: it is reserved for the store's own records"
    return None


def join(prefix: str, relative: str) -> str:
    """``prefix/relative``, or ``relative`` alone for the root prefix."""
    return f"{prefix}/{relative}" if prefix else relative
