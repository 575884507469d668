"""Every error leaves the API as one body: ``{code, message, fields}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from aip.errors import AIPError

log = logging.getLogger("aip.server")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AIPError)
    async def aip_error(_request: Request, exc: AIPError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
        return JSONResponse(exc.to_body(), status_code=exc.http_status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = {}
        for error in exc.errors():
            loc = [str(p) for p in error["loc"] if p not in ("body", "query", "path")]
            fields[".".join(loc) or "body"] = str(error["msg"]).removeprefix("Value error, ")
        message = "invalid request: " + "; ".join(f"{k}: {v}" for k, v in fields.items())
        return JSONResponse({"code": "invalid_request", "message": message, "fields": fields},
                            status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else f"http_{exc.status_code}"
        return JSONResponse({"code": code, "message": str(exc.detail), "fields": {}},
                            status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse({"code": "internal", "message": (
            f"internal error ({type(exc).__name__}); see the server log"), "fields": {}},
            status_code=500)
