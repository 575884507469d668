"""The REST API's contract: auth, error bodies, 404s, OpenAPI."""

from __future__ import annotations

import httpx
import pytest

from aip.testing.server import AipServer


@pytest.mark.parametrize("headers", [
    pytest.param({}, id="missing-token"),
    pytest.param({"Authorization": "Bearer not-the-token"}, id="wrong-token"),
    pytest.param({"Authorization": "Basic abc"}, id="wrong-scheme"),
])
def test_every_api_route_requires_the_token(server: AipServer, headers: dict[str, str]) -> None:
    for method, path in [("GET", "/api/v1/nodes"), ("GET", "/api/v1/jobs"),
                         ("POST", "/api/v1/jobs"), ("GET", "/api/v1/queues")]:
        response = httpx.request(method, server.url + path, headers=headers, json={})
        assert response.status_code == 401, (method, path)
        body = response.json()
        assert body["code"] == "unauthorized" and "token" in body["message"]
        assert set(body) == {"code", "message", "fields"}


def test_health_needs_no_token_and_nodes_need_one(server: AipServer) -> None:
    assert httpx.get(server.url + "/api/v1/health").json()["status"] == "ok"
    nodes = httpx.get(server.url + "/api/v1/nodes",
                      headers={"Authorization": f"Bearer {server.token}"})
    assert nodes.status_code == 200
    [node] = nodes.json()["items"]
    assert node["name"] == "node-a" and len(node["gpus"]) == 4
    assert node["accelerators"] == {"tpu": 4}


def test_token_file_is_private(server: AipServer) -> None:
    assert (server.home / "token").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("path", ["/api/v1/jobs/nope-123", "/api/v1/jobs/nope-123/events",
                                  "/api/v1/jobs/nope-123/logs", "/api/v1/queues/nope"])
def test_unknown_ids_are_404_with_the_error_body(server: AipServer, path: str) -> None:
    response = httpx.get(server.url + path, headers={"Authorization": f"Bearer {server.token}"})
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_bad_query_parameters_name_the_field(server: AipServer) -> None:
    response = httpx.get(server.url + "/api/v1/jobs?limit=0",
                         headers={"Authorization": f"Bearer {server.token}"})
    assert response.status_code == 422
    assert "limit" in response.json()["fields"]


def test_openapi_is_served(server: AipServer) -> None:
    schema = httpx.get(server.url + "/api/v1/openapi.json").json()
    assert "/api/v1/jobs" in schema["paths"] and "/api/v1/queues" in schema["paths"]
    assert httpx.get(server.url + "/docs").status_code == 200
