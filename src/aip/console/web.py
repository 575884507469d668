"""The console's plumbing: templates, the route class that turns errors into pages, and the
dependencies console routes declare (``CurrentSession``, ``CheckedForm``).

Errors: console routes raise the platform's own errors (``aip.errors``). ``ConsoleRoute``
shows them as an HTML page to a person, or as the API's ``{code, message, fields}`` body to
a script (the live-refresh fetches), and never shows a traceback.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote

from fastapi import Depends, Request
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from aip import __version__
from aip.cli.output import human_bytes
from aip.console.session import (
    CSRF_FIELD,
    ConsoleSession,
    Revoked,
    SignInRequired,
    check_csrf,
    read_session,
)
from aip.errors import InvalidSpec
from aip.server.errors import error_body

LIVE_HEADER = "x-aip-live"  # set by console.js on its refresh fetches
MAX_FORM_BYTES = 1 << 20
# Scripts only from /console/static (no inline script can run, even if escaping failed);
# inline style attributes are allowed for the bars' widths.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' "
    "'unsafe-inline'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


@functools.cache
def _templates() -> Environment:
    """Built on first use (not at import), so the API alone never loads the templates."""
    env = Environment(loader=PackageLoader("aip.console", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(ago=ago, size=human_size, when=short_time, number=number)
    env.globals.update(version=__version__)
    return env


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    session: ConsoleSession | None = getattr(request.state, "console_session", None)
    html = _templates().get_template(name).render(
        request=request, session=session, csrf_field=CSRF_FIELD, path=request.url.path,
        now=time.time(), **context)
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def wants_page(request: Request) -> bool:
    """A person navigating (show a page), not the console's own fetches (show JSON)."""
    return LIVE_HEADER not in request.headers and (
        "text/html" in request.headers.get("accept", "") or (request.method == "POST"
        and "json" not in request.headers.get("content-type", "")))


class ConsoleRoute(APIRoute):
    """An APIRoute whose errors become pages (or JSON for fetches) instead of tracebacks."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired as exc:
                if wants_page(request):
                    target = request.url.path + (f"?{request.url.query}"
                                                 if request.url.query else "")
                    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
                return JSONResponse(exc.to_body(), status_code=401)
            except Exception as exc:  # the API's error bodies, as a page for a person
                status, body = error_body(exc)
                if wants_page(request):
                    return render(request, "error.html", status=status, status_code=status,
                                  **body)
                return JSONResponse(body, status_code=status)

        return route


# -- dependencies ---------------------------------------------------------------------------


def console_session(request: Request) -> ConsoleSession:
    revoked: Revoked = request.app.state.console_revoked
    session = read_session(request, revoked)
    if session is None:
        raise SignInRequired("sign in first: paste the admin token ($AIP_HOME/token) at /login")
    request.state.console_session = session
    return session


CurrentSession = Annotated[ConsoleSession, Depends(console_session)]


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form (the console posts nothing else); the last value of each name."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise InvalidSpec("form too large (over 1 MiB)")
    return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))


async def checked_form(request: Request, session: CurrentSession) -> dict[str, str]:
    """The form of a state-changing POST, after the same-origin and CSRF checks."""
    form = await read_form(request)
    check_csrf(request, session, form.get(CSRF_FIELD))
    return form


CheckedForm = Annotated[dict[str, str], Depends(checked_form)]


async def checked_json(request: Request, session: CurrentSession) -> dict[str, Any]:
    """A JSON POST from console.js: CSRF token in the ``X-CSRF-Token`` header."""
    check_csrf(request, session, None)
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError:
        raise InvalidSpec("request body is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidSpec("request body must be a JSON object")
    return data


CheckedJson = Annotated[dict[str, Any], Depends(checked_json)]

# -- template filters ----------------------------------------------------------------------


def ago(value: float | str | None, now: float | None = None) -> str:
    """'12s ago', '5m ago', '3h ago', '2d ago' from a timestamp or an ISO time."""
    if value is None or value == "":
        return "—"
    ts = datetime.fromisoformat(value).timestamp() if isinstance(value, str) else value
    seconds = max(0, int((now if now is not None else time.time()) - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def short_time(value: float | str | None) -> str:
    if value is None or value == "":
        return "—"
    moment = (datetime.fromisoformat(value) if isinstance(value, str)
              else datetime.fromtimestamp(value, UTC))
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def human_size(value: float | int | None) -> str:
    """Bytes as a person reads them, as the CLI writes them: 512Mi, 16Gi."""
    return "—" if value is None else human_bytes(value)


def number(value: float | int | None, digits: int = 2) -> str:
    """Drop useless decimals: 4 not 4.0, 0.5 not 0.50."""
    if value is None:
        return "—"
    text = f"{float(value):.{digits}f}"
    if "." in text:  # never strip an integer's own zeros: 10 stays 10
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text
