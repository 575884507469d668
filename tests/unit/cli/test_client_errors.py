"""``aip.client.Client`` maps every failure to the ``AIPError`` a user can act on.

Only the error mapping is tested here, with httpx's MockTransport; the client's behaviour
against the real server lives in tests/integration.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from aip.client import Client, JobWaitTimeout
from aip.errors import AIPError, InvalidSpec, NotFound, ServerUnavailable, Unauthorized

SERVER = "http://aip.test:8470"


def client_answering(status: int, body: object, content_type: str = "application/json") -> Client:
    def answer(request: httpx.Request) -> httpx.Response:
        content = json.dumps(body) if content_type == "application/json" else str(body)
        return httpx.Response(status, content=content, headers={"Content-Type": content_type})

    return Client(SERVER, token="t", transport=httpx.MockTransport(answer))


def test_no_server_configured_says_how_to_start_one() -> None:
    with pytest.raises(ServerUnavailable, match=r"no AIP server found: start one with `aip up`"):
        Client()


def test_the_local_server_and_token_are_found_in_aip_home(isolated_aip_home: Path) -> None:
    isolated_aip_home.mkdir()
    (isolated_aip_home / "server.json").write_text(json.dumps({"url": SERVER + "/", "pid": 1}))
    with pytest.raises(Unauthorized, match="AIP_TOKEN"):
        Client()
    (isolated_aip_home / "token").write_text("secret\n")
    with Client() as client:
        assert client.server == SERVER


@pytest.mark.parametrize(("status", "body", "error", "fields"), [
    pytest.param(404, {"code": "not_found", "message": "no job 'x'", "fields": {}},
                 NotFound, {}, id="not found"),
    pytest.param(422, {"code": "invalid_spec", "message": "invalid spec",
                       "fields": {"replicas.worker.resources.gpu": "must be >= 0 (line 6)"}},
                 InvalidSpec, {"replicas.worker.resources.gpu": "must be >= 0 (line 6)"},
                 id="invalid spec keeps its field paths"),
    pytest.param(401, {"code": "unauthorized", "message": "bad token", "fields": {}},
                 Unauthorized, {}, id="refused token"),
])
def test_server_errors_come_back_as_the_same_error_class(
        status: int, body: object, error: type[AIPError], fields: dict[str, str]) -> None:
    with pytest.raises(error) as caught:
        client_answering(status, body).get_job("x")
    assert caught.value.message == body["message"]  # type: ignore[index]
    assert caught.value.fields == fields


def test_a_proxy_error_page_is_still_a_readable_error() -> None:
    with pytest.raises(AIPError, match="HTTP 502"):
        client_answering(502, "<html>Bad Gateway</html>", "text/html").list_nodes()


def test_connection_failures_name_the_server_and_the_fix() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = Client(SERVER, token="t", transport=httpx.MockTransport(refuse))
    with pytest.raises(ServerUnavailable, match=f"cannot reach the AIP server at {SERVER}"):
        client.list_queues()
    with pytest.raises(ServerUnavailable, match="aip up"):
        list(client.follow_logs("train-1"))


def test_waiting_past_the_timeout_says_where_the_job_stands() -> None:
    job = {"id": "train-1", "state": "PENDING", "reason": "queue default: gpu quota 4/4 in use"}
    with pytest.raises(JobWaitTimeout, match="still PENDING") as caught:
        client_answering(200, job).wait_job("train-1", timeout=0)
    assert caught.value.fields == {"reason": "queue default: gpu quota 4/4 in use"}
