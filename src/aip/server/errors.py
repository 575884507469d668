"""Every error leaves the API as one body: ``{code, message, fields}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from aip.errors import AIPError

log = logging.getLogger("aip.server")


def error_body(exc: Exception) -> tuple[int, dict[str, Any]]:
    """The HTTP status and ``{code, message, fields}`` body of any exception: the API sends
    it as JSON, the console as JSON or as an error page. Unexpected ones are logged."""
    if isinstance(exc, AIPError):
        return exc.http_status, exc.to_body()
    if isinstance(exc, RequestValidationError):
        fields = {}
        for error in exc.errors():
            loc = [str(p) for p in error["loc"] if p not in ("body", "query", "path")]
            fields[".".join(loc) or "body"] = str(error["msg"]).removeprefix("Value error, ")
        message = "invalid request: " + "; ".join(f"{k}: {v}" for k, v in fields.items())
        return 422, {"code": "invalid_request", "message": message, "fields": fields}
    if isinstance(exc, HTTPException):
        code = "not_found" if exc.status_code == 404 else f"http_{exc.status_code}"
        return exc.status_code, {"code": code, "message": str(exc.detail), "fields": {}}
    log.exception("unhandled error", exc_info=exc)
    return 500, {"code": "internal", "fields": {},
                 "message": f"internal error ({type(exc).__name__}); see the server log"}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AIPError)
    async def aip_error(_request: Request, exc: AIPError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
        return JSONResponse(exc.to_body(), status_code=exc.http_status, headers=headers)

    @app.exception_handler(RequestValidationError)
    @app.exception_handler(HTTPException)
    @app.exception_handler(Exception)
    async def other_error(_request: Request, exc: Exception) -> JSONResponse:
        status, body = error_body(exc)
        return JSONResponse(body, status_code=status)
