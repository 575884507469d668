"""Model URIs: how a user, a job or an endpoint names one registered model version.

    models:/fraud@production     the version the alias ``production`` points to
    models:/fraud/3              version 3
    models:/fraud                the newest version (also ``models:/fraud/latest``)

The CLI also takes the short forms without the scheme (``fraud@production``, ``fraud/3``).
Names follow the job-name rules; aliases too, except ``latest`` and all-digit words, which
would read as versions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from aip.errors import InvalidSpec
from aip.spec.job import NAME_RE

SCHEME: Final = "models:/"
LATEST: Final = "latest"
RESERVED_MODEL_NAMES: Final = frozenset({"resolve"})  # /api/v1/models/resolve is a route
_VERSION = re.compile(r"^[0-9]{1,9}$")
MAX_VERSION: Final = 999_999_999


@dataclass(frozen=True)
class ModelRef:
    """One model version, by number, by alias, or the newest (neither given)."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __post_init__(self) -> None:
        if self.version is not None and self.alias is not None:
            raise ValueError("a model reference has a version or an alias, not both")

    @property
    def is_latest(self) -> bool:
        return self.version is None and self.alias is None

    def __str__(self) -> str:
        if self.alias is not None:
            return f"{SCHEME}{self.name}@{self.alias}"
        if self.version is not None:
            return f"{SCHEME}{self.name}/{self.version}"
        return f"{SCHEME}{self.name}"


def parse_model_uri(text: str, *, field: str = "uri", scheme_required: bool = True) -> ModelRef:
    """``models:/name@alias`` | ``models:/name/3`` | ``models:/name[/latest]`` -> ModelRef.

    With ``scheme_required=False`` the ``models:/`` prefix may be left out (CLI arguments).
    Errors are ``InvalidSpec`` naming ``field`` and saying what a good URI looks like.
    """
    raw = text.strip()
    body = raw.removeprefix(SCHEME)
    if body == raw and (scheme_required or raw.startswith("models:")):
        raise _bad(text, field, "it must start with 'models:/'")
    if "@" in body:
        name, _, alias = body.partition("@")
        _check_model_name(name, text, field)
        check_alias(alias, field=field, uri=text)
        return ModelRef(name, alias=alias)
    name, slash, version = body.partition("/")
    _check_model_name(name, text, field)
    if not slash or version == LATEST:
        return ModelRef(name)
    if not _VERSION.match(version) or int(version) < 1:
        raise _bad(text, field, f"the version {version!r} must be a number >= 1 or 'latest'")
    return ModelRef(name, version=int(version))


def check_model_name(name: str, field: str = "name") -> str:
    """A model name follows the job-name rules, and is not a word the API routes use."""
    if not NAME_RE.match(name):
        raise InvalidSpec(
            f"model name {name!r} must be 1-63 lower-case letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit", fields={field: "invalid model name"})
    if name in RESERVED_MODEL_NAMES:
        raise InvalidSpec(f"model name {name!r} is reserved by the API; choose another",
                          fields={field: "reserved name"})
    return name


def check_alias(alias: str, *, field: str = "alias", uri: str | None = None) -> str:
    problem = None
    if not NAME_RE.match(alias):
        problem = ("must be 1-63 lower-case letters, digits, '-', '_' or '.', starting and "
                   "ending with a letter or digit")
    elif alias == LATEST or _VERSION.match(alias):
        problem = "is reserved: 'latest' and numbers would read as versions"
    if problem is None:
        return alias
    if uri is not None:
        raise _bad(uri, field, f"the alias {alias!r} {problem}")
    raise InvalidSpec(f"alias {alias!r} {problem}", fields={field: f"invalid alias {alias!r}"})


def _check_model_name(name: str, uri: str, field: str) -> None:
    if not NAME_RE.match(name):
        raise _bad(uri, field, f"the model name {name!r} must be 1-63 lower-case letters, "
                   "digits, '-', '_' or '.'")


def _bad(uri: str, field: str, problem: str) -> InvalidSpec:
    return InvalidSpec(
        f"model URI {uri!r}: {problem}; write models:/NAME@ALIAS, models:/NAME/VERSION or "
        "models:/NAME", fields={field: problem})
