"""What a replica answers when a request or a model is wrong.

Every error is an ``AIPError`` with a machine-readable ``code``, an HTTP status and the field
at fault; the replica sends it as

    {"error": "inputs.x: the model expects shape [-1, 4], got [2, 5]",
     "code": "shape_mismatch", "field": "inputs.x"}

``error`` is what the Open Inference Protocol (KServe, Triton) puts in its error bodies, so
their clients show the message; ``code`` and ``field`` are for programs.
"""

from __future__ import annotations

from aip.errors import AIPError


class ServingError(AIPError):
    """Base of the errors a replica answers with."""

    code = "serving_error"
    http_status = 500

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message, fields={field: message} if field else None)
        self.field = field

    def to_body(self) -> dict[str, object]:
        return {"error": self.message, "code": self.code, "field": self.field}


class InvalidInput(ServingError):
    """The request is well-formed HTTP but not a valid inference request."""

    code = "invalid_input"
    http_status = 400


class MalformedBody(InvalidInput):
    code = "malformed_body"


class MissingInput(InvalidInput):
    code = "missing_input"


class UnknownInput(InvalidInput):
    code = "unknown_input"


class DtypeMismatch(InvalidInput):
    code = "dtype_mismatch"


class ShapeMismatch(InvalidInput):
    code = "shape_mismatch"


class BodyTooLarge(ServingError):
    code = "body_too_large"
    http_status = 413


class ModelNotFound(ServingError):
    code = "model_not_found"
    http_status = 404


class RouteNotFound(ServingError):
    code = "not_found"
    http_status = 404


class MethodNotAllowed(ServingError):
    code = "method_not_allowed"
    http_status = 405


class ModelNotReady(ServingError):
    """The model is still loading (or failed to load); try again once ready answers 200."""

    code = "model_not_ready"
    http_status = 503


class ModelLoadError(ServingError):
    """The model directory cannot be served: a bad manifest, a missing file or framework."""

    code = "model_load_failed"
    http_status = 500


class InferenceFailed(ServingError):
    """The model raised while predicting on inputs that passed validation."""

    code = "inference_failed"
    http_status = 500
