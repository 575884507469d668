"""One error hierarchy for AIP: a machine-readable code, a message that says what to do,
and the field paths that caused it.

The REST API sends every error as ``{"code", "message", "fields"}``; the SDK turns that body
back into the same exception class, and the CLI prints it without a traceback unless
``AIP_DEBUG=1``.
"""

from __future__ import annotations

import importlib
from typing import ClassVar

# Every error class by its code; subclasses register themselves when their module loads.
ERRORS_BY_CODE: dict[str, type[AIPError]] = {}
# Modules that define error classes outside this one, imported before a lookup by code.
_ERROR_MODULES = ("aip.storage.errors", "aip.runtime.interpreters", "aip.tracking.common")


class AIPError(Exception):
    """Base of every error AIP raises on purpose."""

    code: ClassVar[str] = "internal"
    http_status: ClassVar[int] = 500

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        ERRORS_BY_CODE.setdefault(cls.code, cls)

    def __init__(self, message: str, *, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields: dict[str, str] = dict(fields or {})

    def to_body(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, "fields": self.fields}

    def __str__(self) -> str:
        if not self.fields:
            return self.message
        details = "; ".join(f"{path}: {text}" for path, text in self.fields.items())
        if details in self.message:
            return self.message
        return f"{self.message} ({details})"


class InvalidSpec(AIPError):
    """A job, queue or node spec is malformed or breaks a rule.

    ``lines`` maps a field path, or ``DOCUMENT`` for text that does not parse, to its line in
    the source text where that is known; it is not part of the wire body."""

    code = "invalid_spec"
    http_status = 422

    def __init__(self, message: str, *, fields: dict[str, str] | None = None,
                 lines: dict[str, int] | None = None) -> None:
        super().__init__(message, fields=fields)
        self.lines: dict[str, int] = dict(lines or {})


# ``InvalidSpec.lines``' key for the whole text: YAML or JSON that does not parse.
DOCUMENT = "(document)"


class Unschedulable(AIPError):
    """No registered node could ever hold the request, so it is rejected at submit."""

    code = "unschedulable"
    http_status = 422


class NotFound(AIPError):
    code = "not_found"
    http_status = 404


class Conflict(AIPError):
    """The request clashes with the current state (a name taken, a job already finished)."""

    code = "conflict"
    http_status = 409


class Unauthorized(AIPError):
    code = "unauthorized"
    http_status = 401


class ServerUnavailable(AIPError):
    """The client could not reach an AIP server."""

    code = "server_unavailable"
    http_status = 503


ERRORS_BY_CODE[AIPError.code] = AIPError


def error_class(code: str) -> type[AIPError]:
    """The error class of ``code`` (``AIPError`` when no class has it)."""
    if code not in ERRORS_BY_CODE:
        for module in _ERROR_MODULES:
            importlib.import_module(module)
    return ERRORS_BY_CODE.get(code, AIPError)


def error_from_body(status: int, body: object) -> AIPError:
    """Rebuild the exception a server sent as ``{code, message, fields}``."""
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        cls = error_class(str(body.get("code")))
        raw_fields = body.get("fields") or {}
        fields = {str(k): str(v) for k, v in raw_fields.items()} if isinstance(
            raw_fields, dict) else {}
        return cls(body["message"], fields=fields)
    return AIPError(f"server answered HTTP {status}: {body!r}")
