"""A real replica process (``python -m aip.serving.replica``) on a loopback port, serving an
ONNX model: readiness, JSON and binary inference, the instances form, metadata, metrics,
batching, and a 4xx naming the problem for every bad input, with the replica still serving
the next good request."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from aip.serving.protocol import decode_infer_response, encode_infer_request
from aip.serving.replica_process import ReplicaProcess, free_port
from tests.unit.serving import models

MAX_BODY_BYTES = 64 * 1024


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    return models.onnx_mlp(tmp_path_factory.mktemp("models") / "mlp")


@pytest.fixture(scope="module")
def replica(model: tuple[Path, Any]) -> Iterator[ReplicaProcess]:
    with ReplicaProcess(model[0], "--threads", "1", "--max-body-bytes",
                        str(MAX_BODY_BYTES)) as running:
        yield running


@pytest.fixture
def client(replica: ReplicaProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=replica.url, timeout=30) as session:
        yield session


def rows(count: int = 3) -> np.ndarray:
    return np.random.default_rng(count).normal(size=(count, 4)).astype(np.float32)


def test_infer_json_answers_what_onnxruntime_answers(client: httpx.Client,
                                                     model: tuple[Path, Any]) -> None:
    x = rows()
    body, _ = encode_infer_request({"x": x})

    response = client.post("/v2/models/mlp/infer", content=body)

    assert response.status_code == 200
    np.testing.assert_allclose(decode_infer_response(response.content)["y"],
                               model[1].run(None, {"x": x})[0], rtol=1e-6)


def test_infer_binary_in_and_out(client: httpx.Client, model: tuple[Path, Any]) -> None:
    x = rows(5)
    body, header_length = encode_infer_request({"x": x}, binary=True, binary_output=True)

    response = client.post("/v2/models/mlp/infer", content=body,
                           headers={"Inference-Header-Content-Length": str(header_length)})

    assert response.status_code == 200
    length = int(response.headers["Inference-Header-Content-Length"])
    np.testing.assert_allclose(decode_infer_response(response.content, length)["y"],
                               model[1].run(None, {"x": x})[0], rtol=1e-6)


def test_instances_form(client: httpx.Client, model: tuple[Path, Any]) -> None:
    x = rows(2)

    response = client.post("/v1/models/mlp:predict", json={"instances": x.tolist()})

    assert response.status_code == 200
    np.testing.assert_allclose(response.json()["predictions"], model[1].run(None, {"x": x})[0],
                               rtol=1e-6)


def test_metadata_and_readiness(client: httpx.Client) -> None:
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2/models/mlp").json() == {
        "name": "mlp", "versions": [], "platform": "onnxruntime_onnx",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 3]}]}


def _tensor(**fields: Any) -> dict[str, Any]:
    return {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4], **fields}


BAD_REQUESTS: list[tuple[str, bytes, dict[str, str], int, str, str]] = [
    ("wrong-shape", json.dumps({"inputs": [_tensor(shape=[2, 2])]}).encode(), {}, 400,
     "shape_mismatch", "inputs.x"),
    ("wrong-dtype", json.dumps({"inputs": [_tensor(datatype="BYTES",
                                                   data=["a", "b", "c", "d"])]}).encode(), {},
     400, "dtype_mismatch", "inputs.x"),
    ("missing-input", json.dumps({"inputs": [_tensor(name="features")]}).encode(), {}, 400,
     "unknown_input", "inputs.features"),
    ("malformed-json", b'{"inputs": [', {}, 400, "malformed_body", "body"),
    ("oversized-body", b"[" + b"0," * MAX_BODY_BYTES + b"0]", {}, 413, "body_too_large",
     "body"),
    ("header-length-not-a-number", json.dumps({"inputs": [_tensor(
        data=None, parameters={"binary_data_size": 12})]}).encode() + b"\0" * 12,
     {"Inference-Header-Content-Length": "-"}, 400, "invalid_input",
     "headers.inference-header-content-length"),
]


@pytest.mark.parametrize("body, headers, status, code, field",
                         [case[1:] for case in BAD_REQUESTS],
                         ids=[case[0] for case in BAD_REQUESTS])
def test_bad_input_gets_a_4xx_naming_it_and_the_next_request_succeeds(
        client: httpx.Client, body: bytes, headers: dict[str, str], status: int, code: str,
        field: str) -> None:
    response = client.post("/v2/models/mlp/infer", content=body, headers=headers)

    assert response.status_code == status
    error = response.json()
    assert (error["code"], error["field"]) == (code, field)
    assert error["error"].startswith(field)
    good = client.post("/v2/models/mlp/infer", content=encode_infer_request({"x": rows()})[0])
    assert good.status_code == 200
    assert client.get("/v2/health/ready").status_code == 200


def test_a_missing_input_is_named(client: httpx.Client) -> None:
    body = json.dumps({"inputs": []}).encode()

    response = client.post("/v2/models/mlp/infer", content=body)

    assert response.status_code == 400
    assert response.json()["field"] == "inputs"


def test_metrics_count_requests_latency_and_batches(client: httpx.Client) -> None:
    client.post("/v2/models/mlp/infer", content=encode_infer_request({"x": rows()})[0])
    client.post("/v2/models/mlp/infer", content=b"{")

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'aip_replica_requests_total{model="mlp",route="infer",status="200"}' in text
    assert 'aip_replica_requests_total{model="mlp",route="infer",status="400"}' in text
    assert 'aip_replica_request_seconds_bucket{le="0.001",model="mlp",route="infer"}' in text
    assert 'aip_replica_batch_size_count{model="mlp"}' in text
    assert 'aip_replica_queue_depth{model="mlp"}' in text


def test_a_batching_replica_answers_concurrent_requests_with_their_own_rows(
        model: tuple[Path, Any]) -> None:
    inputs = [rows(1 + index % 3) + index for index in range(24)]
    with ReplicaProcess(model[0], "--threads", "1", "--max-batch-size", "16",
                        "--max-wait-ms", "20") as batching, \
            httpx.Client(base_url=batching.url, timeout=30) as client:

        def infer(x: np.ndarray) -> np.ndarray:
            response = client.post("/v2/models/mlp/infer",
                                   content=encode_infer_request({"x": x})[0])
            assert response.status_code == 200
            return decode_infer_response(response.content)["y"]

        with ThreadPoolExecutor(max_workers=8) as pool:
            outputs = list(pool.map(infer, inputs))
        metrics = client.get("/metrics").text

    for x, y in zip(inputs, outputs, strict=True):
        np.testing.assert_allclose(y, model[1].run(None, {"x": x})[0], rtol=1e-5)
    calls = next(float(line.split()[-1]) for line in metrics.splitlines()
                 if line.startswith("aip_replica_batch_size_count"))
    assert calls < len(inputs)  # some requests shared a predict call


def test_a_model_that_cannot_load_ends_the_process_with_status_1(tmp_path: Path) -> None:
    model_dir = models.write_manifest(tmp_path / "broken", "onnx", "model.onnx")
    (model_dir / "model.onnx").write_bytes(b"garbage")

    result = subprocess.run(
        [sys.executable, "-m", "aip.serving.replica", "--model-dir", str(model_dir), "--port",
         str(free_port())], capture_output=True, text=True, timeout=60)

    assert result.returncode == 1
    assert "ONNX Runtime cannot load the model" in result.stderr
