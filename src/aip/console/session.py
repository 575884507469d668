"""Console sign-in: a signed session cookie, a CSRF token tied to it, a same-origin check.

Why a cookie and not the token itself: the browser must not hold the admin token where page
scripts can read it, and it should not travel on every request. A person pastes the token
once; the server answers with a cookie whose value is ``<session id>.<issued>.<mac>`` where the
MAC is an HMAC-SHA256 keyed by the admin token. So:

- the cookie never contains the token, and a forged or edited cookie fails the MAC;
- rotating the admin token (``$AIP_HOME/token``) signs every console session out;
- the server keeps no session table: a restart keeps people signed in, and sign-out adds the
  session id to a small in-memory revocation set (sessions also expire after ``MAX_AGE``).

State-changing console requests (every POST) need both a CSRF token — derived from the
session id with the same key, sent as a hidden form field or an ``X-CSRF-Token`` header —
and an ``Origin`` (or, lacking it, ``Referer``) of this very server. The cookie is
``SameSite=Strict`` as well; the two checks hold even where a browser ignores that.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from aip.errors import AIPError

COOKIE_NAME = "aip_session"
MAX_AGE = 12 * 3600  # seconds a sign-in lasts
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class SignInRequired(AIPError):
    """No valid console session: pages redirect to /login, fetches get 401."""

    code = "sign_in_required"
    http_status = 401


class Forbidden(AIPError):
    """A request the console refuses outright: cross-site, or without its CSRF token."""

    code = "forbidden"
    http_status = 403


@dataclass(frozen=True)
class ConsoleSession:
    id: str
    issued: int
    csrf_token: str


class Revoked:
    """Session ids signed out before they expired. In memory: after a restart a signed-out
    cookie would work again until it expires, which the short ``MAX_AGE`` bounds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: dict[str, int] = {}

    def add(self, session: ConsoleSession) -> None:
        with self._lock:
            now = int(time.time())
            self._ids = {sid: issued for sid, issued in self._ids.items()
                         if issued + MAX_AGE > now}
            self._ids[session.id] = session.issued

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._ids


def token_matches(given: str, token: str) -> bool:
    return bool(given) and hmac.compare_digest(given.strip().encode(), token.encode())


def new_session(token: str, now: float | None = None) -> tuple[ConsoleSession, str]:
    """A fresh session and the cookie value that carries it."""
    session_id = secrets.token_urlsafe(18)
    issued = int(now if now is not None else time.time())
    mac = _mac(token, f"session|{session_id}|{issued}")
    return _session(token, session_id, issued), f"{session_id}.{issued}.{mac}"


def read_session(request: Request, revoked: Revoked, now: float | None = None
                 ) -> ConsoleSession | None:
    """The request's valid session, or None (no cookie, bad MAC, expired, signed out)."""
    value = request.cookies.get(COOKIE_NAME, "")
    session_id, _, rest = value.partition(".")
    issued_text, _, mac = rest.partition(".")
    if not (session_id and issued_text.isdigit() and mac):
        return None
    token: str = request.app.state.token
    if not hmac.compare_digest(mac, _mac(token, f"session|{session_id}|{issued_text}")):
        return None
    issued = int(issued_text)
    current = now if now is not None else time.time()
    if not issued <= current + 60 < issued + MAX_AGE + 60 or session_id in revoked:
        return None
    return _session(token, session_id, issued)


def check_csrf(request: Request, session: ConsoleSession, given: str | None) -> None:
    """Refuse (403) a state-changing request that is cross-site or lacks the session's token."""
    check_same_origin(request)
    given = given or request.headers.get(CSRF_HEADER, "")
    if not given or not hmac.compare_digest(given.encode(), session.csrf_token.encode()):
        raise Forbidden("missing or wrong CSRF token: reload the page and try again")


def check_same_origin(request: Request) -> None:
    """The request must come from a page of this server: ``Origin``, else ``Referer``."""
    own = f"{request.url.scheme}://{request.headers.get('host', '')}".lower()
    origin = request.headers.get("origin")
    if origin is None:
        referer = request.headers.get("referer")
        if referer:
            parts = urlsplit(referer)
            origin = f"{parts.scheme}://{parts.netloc}"
    if origin is None or origin.lower() != own:
        raise Forbidden("cross-site request refused: console forms work only from the "
                        "console's own pages")


def set_cookie(response: Response, request: Request, value: str) -> None:
    response.set_cookie(COOKIE_NAME, value, max_age=MAX_AGE, path="/", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")


def clear_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")


def _session(token: str, session_id: str, issued: int) -> ConsoleSession:
    return ConsoleSession(id=session_id, issued=issued,
                          csrf_token=_mac(token, f"csrf|{session_id}"))


def _mac(token: str, message: str) -> str:
    return hmac.new(token.encode(), message.encode(), hashlib.sha256).hexdigest()
