"""Console sessions and CSRF: signed cookies, expiry, revocation, same-origin checks."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from starlette.requests import Request

from aip.console.session import (
    COOKIE_NAME,
    MAX_AGE,
    Forbidden,
    Revoked,
    check_csrf,
    new_session,
    read_session,
    token_matches,
)

TOKEN = "admin-token-0123456789"
NOW = 1_800_000_000.0


def request(cookie: str | None = None, token: str = TOKEN, **headers: str) -> Request:
    raw = [(b"host", b"127.0.0.1:8470")]
    if cookie is not None:
        raw.append((b"cookie", f"{COOKIE_NAME}={cookie}".encode()))
    raw += [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    app = SimpleNamespace(state=SimpleNamespace(token=token))
    return Request({"type": "http", "method": "POST", "scheme": "http", "path": "/submit",
                    "headers": raw, "query_string": b"", "app": app})


def test_a_fresh_cookie_reads_back_as_the_same_session_without_the_token_inside() -> None:
    session, value = new_session(TOKEN, now=NOW)
    assert TOKEN not in value
    assert read_session(request(value), Revoked(), now=NOW + 5) == session


@pytest.mark.parametrize("tamper", [
    lambda v: v[:-1] + ("0" if v[-1] != "0" else "1"),  # the MAC changed
    lambda v: "other" + v,  # the session id changed
    lambda v: v.replace(".", ".1", 1),  # the issue time changed
    lambda v: "", lambda v: "no-dots", lambda v: "a.b.c",
])
def test_an_edited_or_malformed_cookie_is_no_session(tamper: object) -> None:
    _, value = new_session(TOKEN, now=NOW)
    assert read_session(request(tamper(value)), Revoked(), now=NOW) is None  # type: ignore[operator]


def test_rotating_the_admin_token_signs_every_session_out() -> None:
    _, value = new_session(TOKEN, now=NOW)
    assert read_session(request(value, token="rotated"), Revoked(), now=NOW) is None


def test_a_session_expires_after_max_age() -> None:
    _, value = new_session(TOKEN, now=NOW)
    assert read_session(request(value), Revoked(), now=NOW + MAX_AGE - 1) is not None
    assert read_session(request(value), Revoked(), now=NOW + MAX_AGE + 1) is None


def test_a_signed_out_session_stays_out() -> None:
    session, value = new_session(TOKEN, now=NOW)
    revoked = Revoked()
    revoked.add(session)
    assert read_session(request(value), revoked, now=NOW) is None


def test_the_csrf_token_is_tied_to_the_session() -> None:
    first, _ = new_session(TOKEN, now=NOW)
    second, _ = new_session(TOKEN, now=NOW)
    assert first.csrf_token != second.csrf_token
    same_site = request(origin="http://127.0.0.1:8470")
    check_csrf(same_site, first, first.csrf_token)
    with pytest.raises(Forbidden, match="CSRF"):
        check_csrf(same_site, first, second.csrf_token)
    with pytest.raises(Forbidden, match="CSRF"):
        check_csrf(same_site, first, "")


@pytest.mark.parametrize("headers", [
    {"origin": "https://evil.example"},
    {"origin": "http://127.0.0.1:9999"},  # another port is another origin
    {"origin": "null"},
    {"referer": "https://evil.example/page"},
    {},  # neither Origin nor Referer
])
def test_a_request_from_another_origin_is_refused_even_with_the_right_token(
        headers: dict[str, str]) -> None:
    session, _ = new_session(TOKEN, now=NOW)
    with pytest.raises(Forbidden, match="cross-site"):
        check_csrf(request(**headers), session, session.csrf_token)


def test_a_same_origin_referer_is_enough_when_origin_is_absent() -> None:
    session, _ = new_session(TOKEN, now=NOW)
    check_csrf(request(referer="http://127.0.0.1:8470/submit"), session, session.csrf_token)


def test_token_comparison() -> None:
    assert token_matches(f"  {TOKEN}\n", TOKEN)
    assert not token_matches("", TOKEN) and not token_matches(TOKEN[:-1], TOKEN)
