"""The errors ``aip.optimize`` raises on purpose, inside AIP's one hierarchy.

Bad input (a metric that cannot be computed, calibration data of the wrong shape) is an
``InvalidSpec`` whose ``fields`` name the argument (``metric``, ``calib_data``) so the CLI
prints it the way it prints every other mistake. A model the exporters cannot translate is
an ``ExportFailed`` that names the operator and a workaround.
"""

from __future__ import annotations

from aip.errors import AIPError, InvalidSpec


class OptimizeError(AIPError):
    """The optimizer could not finish for a reason the user can act on."""

    code = "optimize_failed"
    http_status = 422


class ExportFailed(OptimizeError):
    """Neither torch.export (dynamo) nor the TorchScript exporter could translate the model."""

    code = "export_failed"


def invalid(field: str, message: str, hint: str) -> InvalidSpec:
    """An ``InvalidSpec`` for one argument: ``message`` says what is wrong, ``hint`` what to
    do, and the field line repeats both so scripts can read them from ``fields``."""
    return InvalidSpec(f"{field}: {message}; {hint}", fields={field: f"{message}; {hint}"})


def first_line(exc: BaseException) -> str:
    """The first non-blank line of ``exc``'s message (at most 300 characters; "" when it has
    none): for reasons in the report, not a page of traceback."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0][:300] if lines else ""
