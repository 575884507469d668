"""The tracking routes in the ASGI app (no server process, no reconciler): who may call them,
what they validate, and artifacts streamed in and out of a local artifact store."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aip.config import Settings
from aip.control import jobs as job_service
from aip.control import queues as queue_service
from aip.control import tracking
from aip.control.platform import Platform, PlatformConfig
from aip.server.app import create_app
from aip.spec import JobSpec
from aip.store.db import migrate

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette deprecates its httpx-based TestClient
    from fastapi.testclient import TestClient

ADMIN = "admin-token"


class Api:
    def __init__(self, tmp_path: Path) -> None:
        config = PlatformConfig.model_validate({"nodes": [{"name": "n", "cpu": 4,
                                                           "memory": "4Gi"}]})
        self.platform = Platform.from_settings(Settings(home=tmp_path), config)
        migrate(self.platform.engine)  # the lifespan (and its reconciler) is not run
        with self.platform.sessions.begin() as session:
            queue_service.ensure_default(session, 1.0)
        self.http = TestClient(create_app(self.platform, ADMIN))

    def job(self, name: str) -> tuple[str, str]:
        """A new job and a token of it."""
        spec = JobSpec.model_validate({"name": name, "command": ["true"]})
        with self.platform.sessions.begin() as session:
            job = job_service.submit(session, spec, self.platform.nodes(), 1.0)
            return job.id, tracking.issue_job_token(session, job.id, 1.0)

    def call(self, method: str, path: str, token: str | None, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.request(method, "/api/v1" + path, headers=headers, **kwargs)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    api = Api(tmp_path)
    yield api
    api.platform.engine.dispose()


POINTS = {"points": [{"key": "loss", "step": 0, "value": 1.0}]}


@pytest.mark.parametrize(("method", "suffix", "body"), [
    ("POST", "metrics", POINTS), ("GET", "metrics", None),
    ("POST", "params", {"params": {"lr": "0.1"}}), ("GET", "params", None),
    ("GET", "artifacts", None),
])
def test_a_job_token_opens_its_own_job_and_no_other(api: Api, method: str, suffix: str,
                                                    body: object) -> None:
    job, token = api.job("mine")
    other, _ = api.job("theirs")
    assert api.call(method, f"/jobs/{job}/{suffix}", token, json=body).status_code == 200
    assert api.call(method, f"/jobs/{job}/{suffix}", ADMIN, json=body).status_code == 200
    refused = api.call(method, f"/jobs/{other}/{suffix}", token, json=body)
    assert refused.status_code == 404
    assert "reaches only its own job" in refused.json()["message"]
    assert api.call(method, f"/jobs/{job}/{suffix}", None, json=body).status_code == 401
    assert api.call(method, f"/jobs/{job}/{suffix}", "forged", json=body).status_code == 401


def test_a_job_token_opens_no_other_route(api: Api) -> None:
    job, token = api.job("mine")
    for method, path in [("GET", "/jobs"), ("GET", f"/jobs/{job}"), ("GET", "/nodes"),
                         ("POST", f"/jobs/{job}/cancel"), ("GET", f"/jobs/{job}/logs")]:
        assert api.call(method, path, token).status_code == 401, path


def test_a_job_token_cannot_read_another_jobs_artifact(api: Api) -> None:
    _, token = api.job("mine")
    other, other_token = api.job("theirs")
    api.call("POST", f"/jobs/{other}/artifacts", other_token, params={"path": "secret.bin"},
             content=b"secret")
    response = api.call("GET", f"/jobs/{other}/artifacts/secret.bin", token)
    assert response.status_code == 404 and b"secret" not in response.content


def test_metrics_round_trip_with_filters(api: Api) -> None:
    job, token = api.job("mine")
    body = {"points": [
        {"key": "loss", "step": 0, "value": 1.0, "rank": 0, "time": 5.0},
        {"key": "loss", "step": 0, "value": 2.0, "rank": 1},
        {"key": "acc", "step": 0, "value": None}]}
    assert api.call("POST", f"/jobs/{job}/metrics", token, json=body).json() == {"count": 3}
    items = api.call("GET", f"/jobs/{job}/metrics", token,
                     params={"key": "loss", "replica": 1}).json()["items"]
    assert [(i["key"], i["rank"], i["value"]) for i in items] == [("loss", 1, 2.0)]
    everything = api.call("GET", f"/jobs/{job}/metrics", token).json()["items"]
    assert [(i["key"], i["value"]) for i in everything] == [
        ("acc", None), ("loss", 1.0), ("loss", 2.0)]
    assert everything[1]["time"] == 5.0


@pytest.mark.parametrize(("body", "field"), [
    pytest.param({"points": [{"key": "a*b", "step": 0, "value": 1}]}, "points.0.key",
                 id="a bad key"),
    pytest.param({"points": [{"key": "a", "step": -1, "value": 1}]}, "points.0.step",
                 id="a negative step"),
    pytest.param({"points": [{"key": "a", "step": 0, "value": "x"}]}, "points.0.value",
                 id="a value that is no number"),
    pytest.param({"points": [{"key": "a", "step": 0, "value": 1}] * 10_001}, "points",
                 id="too many points"),
])
def test_bad_metric_batches_are_422_naming_the_field(api: Api, body: object,
                                                     field: str) -> None:
    job, token = api.job("mine")
    response = api.call("POST", f"/jobs/{job}/metrics", token, json=body)
    assert response.status_code == 422
    assert field in response.json()["fields"]


def test_params_validate_keys_and_lengths(api: Api) -> None:
    job, token = api.job("mine")
    too_long = api.call("POST", f"/jobs/{job}/params", token,
                        json={"params": {"notes": "x" * 6001}})
    assert too_long.status_code == 422 and "6000" in too_long.json()["message"]
    bad_key = api.call("POST", f"/jobs/{job}/params", token, json={"params": {"a?": "1"}})
    assert bad_key.status_code == 422 and "param key 'a?'" in bad_key.json()["message"]


def test_an_artifact_streams_in_and_out_byte_identical(api: Api) -> None:
    job, token = api.job("mine")
    chunks = [bytes([n]) * 700_000 for n in range(5)]  # 3.5 MB, sent chunked
    data = b"".join(chunks)
    stored = api.call("POST", f"/jobs/{job}/artifacts", token, params={"path": "ckpt/m.bin"},
                      content=iter(chunks)).json()
    digest = hashlib.sha256(data).hexdigest()
    assert stored["key"] == f"jobs/{job}/ckpt/m.bin"
    assert (stored["size"], stored["sha256"]) == (len(data), digest)
    listed = api.call("GET", f"/jobs/{job}/artifacts", token,
                      params={"prefix": "ckpt"}).json()["items"]
    assert [item["path"] for item in listed] == ["ckpt/m.bin"]
    response = api.call("GET", f"/jobs/{job}/artifacts/ckpt/m.bin", token)
    assert response.content == data
    assert response.headers["x-aip-sha256"] == digest
    assert response.headers["content-length"] == str(len(data))
    assert api.platform.artifacts.exists(f"jobs/{job}/ckpt/m.bin")


@pytest.mark.parametrize("path", ["../escape", "/abs", "a//b", ".aip/x"])
def test_artifact_paths_cannot_leave_the_job(api: Api, path: str) -> None:
    job, token = api.job("mine")
    response = api.call("POST", f"/jobs/{job}/artifacts", token, params={"path": path},
                        content=b"x")
    assert response.status_code == 422
    assert "invalid artifact path" in response.json()["message"]


def test_unknown_jobs_and_artifacts_are_404(api: Api) -> None:
    job, _ = api.job("mine")
    assert api.call("GET", "/jobs/ghost/metrics", ADMIN).status_code == 404
    assert api.call("POST", "/jobs/ghost/artifacts", ADMIN, params={"path": "a"},
                    content=b"x").status_code == 404
    missing = api.call("GET", f"/jobs/{job}/artifacts/none.bin", ADMIN)
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
