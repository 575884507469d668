"""The console's security, over plain HTTP against a real ``aip up``: nothing without the
token or a session, no cross-site POST, every piece of job text escaped."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import httpx
import pytest

from aip.testing.server import AipServer, job_spec

PAGES = ["/", "/nodes", "/jobs", "/jobs/any-job", "/submit", "/queues", "/models",
         "/models/any", "/endpoints", "/endpoints/any", "/jobs/any-job/logs/stream"]
SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def csrf_of(client: httpx.Client) -> str:
    found = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/submit").text)
    assert found, "the submit page carries the session's CSRF token"
    return found.group(1)


@pytest.mark.parametrize("path", PAGES)
def test_a_page_without_a_session_redirects_a_person_to_sign_in(
        anonymous: httpx.Client, path: str) -> None:
    answer = anonymous.get(path, headers={"Accept": "text/html"})
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login?next=")


@pytest.mark.parametrize("path", PAGES)
def test_a_fetch_without_a_session_gets_401(anonymous: httpx.Client, path: str) -> None:
    answer = anonymous.get(path, headers={"X-AIP-Live": "1"})
    assert answer.status_code == 401
    assert answer.json()["code"] == "sign_in_required"


def test_api_calls_need_the_token_and_ignore_the_console_cookie(
        anonymous: httpx.Client, signed_in: httpx.Client, server: AipServer) -> None:
    for path in ("/api/v1/jobs", "/api/v1/nodes", "/api/v1/queues", "/api/v1/models"):
        assert anonymous.get(path).status_code == 401
        assert signed_in.get(path).status_code == 401  # the cookie is not an API credential
        assert anonymous.get(path, headers={
            "Authorization": f"Bearer {server.token}"}).status_code == 200
    assert anonymous.post("/api/v1/jobs/validate", content="name: x").status_code == 401


def test_console_posts_without_a_session_are_refused(anonymous: httpx.Client,
                                                      server: AipServer) -> None:
    origin = {"Origin": server.url}
    assert anonymous.post("/console/validate", json={"yaml": "name: x"},
                          headers=origin).status_code == 401
    answer = anonymous.post("/submit", data={"kind": "quick", "command": "true"}, headers=origin)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")


def test_a_wrong_or_forged_credential_opens_nothing(anonymous: httpx.Client,
                                                    server: AipServer) -> None:
    wrong = anonymous.post("/login", data={"token": "not-the-token"},
                           headers={"Origin": server.url})
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    assert "not this server" in wrong.text
    for forged in ("abc", "abc.123.def", "x" * 24 + ".9999999999." + "0" * 64):
        anonymous.cookies.set("aip_session", forged)
        assert anonymous.get("/", headers={"Accept": "text/html"}).status_code == 303


def test_the_session_cookie_is_httponly_strict_and_does_not_hold_the_token(
        anonymous: httpx.Client, server: AipServer) -> None:
    answer = anonymous.post("/login", data={"token": server.token, "next": "https://evil.example/"},
                            headers={"Origin": server.url})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"  # never sent off-site after sign-in
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http on loopback; set under https
    assert server.token not in cookie


def test_signing_in_from_another_site_is_refused(anonymous: httpx.Client,
                                                 server: AipServer) -> None:
    answer = anonymous.post("/login", data={"token": server.token},
                            headers={"Origin": "https://evil.example"})
    assert answer.status_code == 403 and "set-cookie" not in answer.headers


def test_a_cross_site_post_is_refused_and_changes_nothing(
        signed_in: httpx.Client, server: AipServer) -> None:
    token = csrf_of(signed_in)
    job = server.client.submit_job(job_spec("victim", "import time; time.sleep(60)"))
    before = server.client.list_jobs(limit=1)["total"]
    form = {"csrf_token": token, "kind": "quick", "name": "evil", "command": "true"}
    evil = {"Origin": "https://evil.example"}
    cases = [
        ("/submit", form, evil),  # right token, foreign origin
        ("/submit", {**form, "csrf_token": ""}, {}),  # own origin, no token
        ("/submit", {**form, "csrf_token": "0" * 64}, {}),  # own origin, wrong token
        (f"/jobs/{job['id']}/cancel", {"csrf_token": token}, evil),
        (f"/jobs/{job['id']}/resubmit", {"csrf_token": ""}, {}),
        ("/logout", {"csrf_token": token}, {"Origin": "null"}),
    ]
    for path, data, headers in cases:
        answer = signed_in.post(path, data=data, headers=headers)
        assert answer.status_code == 403, (path, headers, answer.text)
    no_origin = httpx.post(server.url + "/submit", data=form, cookies=signed_in.cookies)
    assert no_origin.status_code == 403  # neither Origin nor Referer: refused too
    assert signed_in.post("/console/validate", json={"yaml": "name: x"}).status_code == 403
    assert server.client.list_jobs(limit=1)["total"] == before
    assert server.client.get_job(job["id"])["state"] in ("PENDING", "ADMITTED", "RUNNING")
    server.client.cancel_job(job["id"])


def test_the_same_post_from_the_console_itself_works(signed_in: httpx.Client,
                                                     server: AipServer) -> None:
    token = csrf_of(signed_in)
    answer = signed_in.post("/console/validate", json={"yaml": "name: ok\ncommand: [echo, hi]\n"},
                            headers={"X-CSRF-Token": token})
    assert answer.status_code == 200 and answer.json()["valid"] is True
    referer_only = httpx.post(server.url + "/console/validate", json={"yaml": "name: ok"},
                              cookies=signed_in.cookies, headers={
                                  "Referer": server.url + "/submit", "X-CSRF-Token": token})
    assert referer_only.status_code == 200


def test_signing_out_ends_the_session(signed_in: httpx.Client) -> None:
    token = csrf_of(signed_in)
    cookie = signed_in.cookies["aip_session"]
    assert signed_in.post("/logout", data={"csrf_token": token}).status_code == 303
    replay = httpx.get(signed_in.base_url.join("/jobs"), cookies={"aip_session": cookie},
                       headers={"Accept": "text/html"})
    assert replay.status_code == 303


def test_job_text_is_escaped_everywhere_it_is_shown(signed_in: httpx.Client,
                                                    server: AipServer) -> None:
    code = f"print({SCRIPT!r}, flush=True)"
    job = server.client.submit_job(job_spec("escaping", code, labels={"note": SCRIPT}))
    assert server.client.wait_job(job["id"], timeout=30)["state"] == "SUCCEEDED"
    pages = [signed_in.get(path, headers={"Accept": "text/html"}).text for path in (
        f"/jobs/{job['id']}", "/jobs?text=escaping")]
    for html in pages:
        assert SCRIPT not in html
        assert ESCAPED in html
    missing = signed_in.get("/jobs/<img src=x onerror=alert(1)>", headers={"Accept": "text/html"})
    assert missing.status_code == 404  # the error page names the id, as text
    assert "<img src=x" not in missing.text and "&lt;img src=x onerror=alert(1)&gt;" in missing.text
    stream = signed_in.get(f"/jobs/{job['id']}/logs/stream")
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert f"data: {SCRIPT}" in stream.text  # text; the page adds it with textContent
    refused = signed_in.post("/submit", data={
        "csrf_token": csrf_of(signed_in), "kind": "quick", "name": SCRIPT,
        "command": f"{sys.executable} -c pass"})
    assert refused.status_code == 422
    assert "must be 1-63 lower-case letters" in refused.text and SCRIPT not in refused.text


def test_pages_forbid_inline_scripts_and_framing(signed_in: httpx.Client) -> None:
    policy = signed_in.get("/", headers={"Accept": "text/html"}).headers[
        "content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy


def test_an_artifact_link_is_url_encoded_and_downloads_that_file(
        signed_in: httpx.Client, server: AipServer, tmp_path: Path) -> None:
    job = server.client.submit_job(job_spec("artifact-names", "pass"))
    assert server.client.wait_job(job["id"], timeout=30)["state"] == "SUCCEEDED"
    name = "runs/a #1 %41.txt"  # in a raw URL path '#' ends it and '%41' reads as 'A'
    (tmp_path / "file.txt").write_text("the artifact")
    server.client.upload_artifact(job["id"], tmp_path / "file.txt", name)
    html = signed_in.get(f"/jobs/{job['id']}", headers={"Accept": "text/html"}).text
    found = re.search(rf'href="(/jobs/{job["id"]}/artifacts/[^"]+)"', html)
    assert found, "the job page links the artifact"
    assert found.group(1) == f"/jobs/{job['id']}/artifacts/runs/a%20%231%20%2541.txt"
    downloaded = signed_in.get(found.group(1))
    assert downloaded.status_code == 200 and downloaded.text == "the artifact"


def test_a_console_request_that_fails_validation_gets_the_apis_error_body(
        signed_in: httpx.Client) -> None:
    fetched = signed_in.get("/jobs?page=second")
    assert fetched.status_code == 422
    body = fetched.json()
    assert body["code"] == "invalid_request" and list(body["fields"]) == ["page"]
    assert body["message"].startswith("invalid request: page: ")
    page = signed_in.get("/jobs?page=second", headers={"Accept": "text/html"})
    assert page.status_code == 422 and "invalid request: page: " in page.text
