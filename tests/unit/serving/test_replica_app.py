"""The replica's ASGI app in-process (httpx's ASGI transport, no sockets): routes, error
bodies, body limits, readiness, metrics and batching through the inference thread."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from aip.serving.protocol import decode_infer_response, encode_infer_request
from aip.serving.replica import ReplicaApp, ReplicaConfig, main
from tests.unit.serving import models

FLAKY_MODEL = '''
import numpy as np


class Flaky:
    """y = x + 1; raises on a 13; counts rows per call (batch sizes)."""

    batches = []

    def predict(self, inputs):
        x = inputs["x"]
        Flaky.batches.append(len(x))
        if (x == 13).any():
            raise RuntimeError("unlucky input")
        return {"y": x + 1}
'''


def in_loop(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))  # type: ignore[arg-type]
    return run


@pytest.fixture
def mlp_dir(tmp_path: Path) -> Path:
    return models.onnx_mlp(tmp_path / "mlp")[0]


@pytest.fixture
def flaky_dir(tmp_path: Path) -> Path:
    model_dir = tmp_path / "flaky"
    model_dir.mkdir()
    (model_dir / "flaky_model.py").write_text(FLAKY_MODEL)
    signature = {"inputs": [{"name": "x", "dtype": "float64", "shape": [-1, 2]}],
                 "outputs": [{"name": "y", "dtype": "float64", "shape": [-1, 2]}]}
    return models.write_manifest(model_dir, "python", ".", python_class="flaky_model:Flaky",
                                 signature=signature, metadata={"version": "7"})


@asynccontextmanager
async def serving(model_dir: Path, **config: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = ReplicaApp(ReplicaConfig(model_dir=model_dir, threads=1, **config))
    await app.start()
    await app.wait_loaded()
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://replica") as client:
            yield client
    finally:
        await app.stop()


def infer_body(x: np.ndarray, **options: bool) -> tuple[bytes, dict[str, str]]:
    body, header_length = encode_infer_request({"x": x}, **options)
    headers = {} if header_length is None else {
        "inference-header-content-length": str(header_length)}
    return body, headers


@in_loop
async def test_json_and_binary_inference_answer_the_model_outputs(mlp_dir: Path) -> None:
    x = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    async with serving(mlp_dir) as client:
        json_response = await client.post("/v2/models/mlp/infer", content=infer_body(x)[0])
        body, headers = infer_body(x, binary=True, binary_output=True)
        binary_response = await client.post("/v2/models/mlp/infer", content=body,
                                            headers=headers)

    assert json_response.status_code == 200
    assert json_response.headers["content-type"] == "application/json"
    assert binary_response.headers["content-type"] == "application/octet-stream"
    json_y = decode_infer_response(json_response.content)["y"]
    binary_y = decode_infer_response(binary_response.content, int(
        binary_response.headers["inference-header-content-length"]))["y"]
    assert json_y.shape == (3, 3)
    np.testing.assert_array_equal(json_y, binary_y)


@in_loop
async def test_instances_form_answers_predictions(flaky_dir: Path) -> None:
    async with serving(flaky_dir) as client:
        response = await client.post("/v1/models/flaky:predict",
                                     json={"instances": [[1, 2], [3, 4]]})

    assert response.status_code == 200
    assert response.json() == {"predictions": [[2.0, 3.0], [4.0, 5.0]]}


@in_loop
async def test_metadata_health_and_server_routes(flaky_dir: Path) -> None:
    async with serving(flaky_dir) as client:
        metadata = (await client.get("/v2/models/flaky")).json()
        live = await client.get("/v2/health/live")
        ready = await client.get("/v2/health/ready")
        model_ready = await client.get("/v2/models/flaky/ready")
        server = (await client.get("/v2")).json()
        status = (await client.get("/v1/models/flaky")).json()

    assert metadata == {"name": "flaky", "versions": ["7"], "platform": "python",
                        "inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, 2]}],
                        "outputs": [{"name": "y", "datatype": "FP64", "shape": [-1, 2]}]}
    assert (live.status_code, ready.status_code, model_ready.status_code) == (200, 200, 200)
    assert "binary_tensor_data" in server["extensions"]
    assert status == {"name": "flaky", "ready": True}


@pytest.mark.parametrize("method, path, status, code", [
    ("POST", "/v2/models/other/infer", 404, "model_not_found"),
    ("POST", "/v1/models/other:predict", 404, "model_not_found"),
    ("GET", "/v2/models/flaky/infer", 405, "method_not_allowed"),
    ("GET", "/nowhere", 404, "not_found"),
], ids=["unknown-model", "unknown-model-v1", "wrong-method", "unknown-route"])
@in_loop
async def test_requests_off_the_map_get_4xx(flaky_dir: Path, method: str, path: str,
                                            status: int, code: str) -> None:
    async with serving(flaky_dir) as client:
        response = await client.request(method, path)

    assert response.status_code == status
    assert response.json()["code"] == code


@in_loop
async def test_bad_inputs_get_400_naming_the_field_and_the_replica_keeps_serving(
        flaky_dir: Path) -> None:
    bad_requests = {
        b"{not json": "body",
        json.dumps({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64",
                                "data": [1, 2, 3]}]}).encode(): "inputs.x",
        json.dumps({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "BYTES",
                                "data": ["a", "b"]}]}).encode(): "inputs.x",
        json.dumps({"inputs": [{"name": "z", "shape": [1, 2], "datatype": "FP64",
                                "data": [1, 2]}]}).encode(): "inputs.z",
        json.dumps({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64",
                                "data": [1, 2]}],
                    "outputs": [{"name": "why"}]}).encode(): "outputs.why",
    }
    async with serving(flaky_dir) as client:
        for body, field in bad_requests.items():
            response = await client.post("/v2/models/flaky/infer", content=body)
            assert response.status_code == 400, body
            error = response.json()
            assert error["field"] == field
            assert error["error"].startswith(field)
        good = await client.post("/v1/models/flaky:predict", json={"instances": [[1, 2]]})

    assert good.status_code == 200


@in_loop
async def test_a_model_error_is_a_500_and_the_next_request_succeeds(flaky_dir: Path) -> None:
    async with serving(flaky_dir) as client:
        failed = await client.post("/v1/models/flaky:predict", json={"instances": [[13, 1]]})
        good = await client.post("/v1/models/flaky:predict", json={"instances": [[1, 1]]})

    assert failed.status_code == 500
    assert failed.json() == {"error": "RuntimeError: unlucky input", "code": "inference_failed",
                             "field": None}
    assert good.status_code == 200


@in_loop
async def test_a_body_over_the_limit_is_413_by_content_length(flaky_dir: Path) -> None:
    async with serving(flaky_dir, max_body_bytes=1024) as client:
        response = await client.post("/v1/models/flaky:predict", content=b" " * 2000)

    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"
    assert "limit of 1024 bytes" in response.json()["error"]


@in_loop
async def test_a_streamed_body_over_the_limit_is_413_while_reading(flaky_dir: Path) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked upload
        for _ in range(10):
            yield b" " * 512

    async with serving(flaky_dir, max_body_bytes=1024) as client:
        response = await client.post("/v1/models/flaky:predict", content=chunks())

    assert response.status_code == 413


@in_loop
async def test_requests_before_the_model_loads_get_503(flaky_dir: Path) -> None:
    app = ReplicaApp(ReplicaConfig(model_dir=flaky_dir))  # not started: nothing loaded
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://replica") as client:
        ready = await client.get("/v2/health/ready")
        infer = await client.post("/v1/models/flaky:predict", json={"instances": [[1, 2]]})
        live = await client.get("/v2/health/live")

    assert (ready.status_code, infer.status_code, live.status_code) == (503, 503, 200)
    assert ready.json()["error"] == "model 'flaky' is loading"


@in_loop
async def test_a_model_that_cannot_load_is_reported_and_stops_the_replica(
        tmp_path: Path) -> None:
    model_dir = models.write_manifest(tmp_path / "broken", "onnx", "model.onnx")
    (model_dir / "model.onnx").write_bytes(b"garbage")
    failures: list[str] = []
    app = ReplicaApp(ReplicaConfig(model_dir=model_dir), on_load_failure=failures.append)

    await app.start()
    await app.wait_loaded()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://replica") as client:
        ready = await client.get("/v2/health/ready")
    await app.stop()

    assert failures and "ONNX Runtime cannot load" in failures[0]
    assert ready.status_code == 503
    assert "failed to load" in ready.json()["error"]


@in_loop
async def test_concurrent_requests_are_batched_and_metrics_show_it(flaky_dir: Path) -> None:
    async with serving(flaky_dir, max_batch_size=8, max_wait_ms=50) as client:
        responses = await asyncio.gather(*(
            client.post("/v1/models/flaky:predict", json={"instances": [[index, 0]]})
            for index in range(8)))
        metrics = (await client.get("/metrics")).text

    assert [response.json()["predictions"] for response in responses] == [
        [[index + 1.0, 1.0]] for index in range(8)]
    batches = _sample(metrics, "aip_replica_batch_size_count")
    assert batches < 8
    assert _sample(metrics, "aip_replica_batch_size_sum") == 8
    assert _sample(metrics, 'aip_replica_requests_total{model="flaky",route="predict",'
                            'status="200"}') == 8
    assert 'aip_replica_request_seconds_bucket{le="0.5",model="flaky",route="predict"}' in metrics
    assert _sample(metrics, 'aip_replica_ready{model="flaky"}') == 1
    assert _sample(metrics, 'aip_replica_queue_depth{model="flaky"}') == 0


def _sample(metrics: str, prefix: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{prefix} not in /metrics")


def test_the_command_line_refuses_a_directory_without_a_manifest(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--model-dir", str(tmp_path), "--port", "0"]) == 2

    assert "cannot read the model manifest" in capsys.readouterr().err
