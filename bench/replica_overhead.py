"""Per-request overhead of the replica server over an in-process ONNX Runtime call.

    python bench/replica_overhead.py                    # 2,000 requests per case
    python bench/replica_overhead.py --requests 5000 --threads 2 --output json

One ONNX MLP (64 -> 256 -> 256 -> 10, float32, batch 1), timed four ways at concurrency 1:

- **in-process**: ``session.run`` on a session tuned as the replica tunes it;
- **replica, JSON**: an OIP v2 JSON request through ``python -m aip.serving.replica`` with an
  httpx keep-alive client;
- **replica, binary**: the same with binary tensors in and out;
- **replica, JSON (http.client)** and **(raw socket)**: the JSON request with the standard
  library's client, and with a pre-built request on a bare keep-alive socket, whose own costs
  are lower, to tell the server's share from the client's;
- **live probe**: ``GET /v2/health/live`` with httpx: HTTP and client cost with no model.

Overhead = median (p99) of a case minus the in-process median (p99). The target is < 1 ms
at the median. Each request is checked against the in-process output once.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import socket
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from aip.serving.protocol import decode_infer_response, encode_infer_request
from aip.serving.replica_process import ReplicaProcess
from aip.serving.runtimes.base import RuntimeOptions
from aip.serving.runtimes.onnx import OnnxRuntime
from aip.spec.model import ModelManifest

LAYERS = (64, 256, 256, 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    parser.add_argument("--output", choices=["table", "json"], default="table")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = write_mlp(Path(tmp) / "mlp")
        results = run(model_dir, args.requests, args.threads)
    if args.output == "json":
        print(json.dumps(results, indent=2))
        return
    base = results["in-process"]
    print(f"{'case':32} {'median ms':>10} {'p99 ms':>10} {'overhead ms (median / p99)':>28}")
    for case, numbers in results.items():
        overhead = "" if case == "in-process" else (
            f"{numbers['median_ms'] - base['median_ms']:.3f} / "
            f"{numbers['p99_ms'] - base['p99_ms']:.3f}")
        print(f"{case:32} {numbers['median_ms']:10.3f} {numbers['p99_ms']:10.3f} "
              f"{overhead:>28}")


def run(model_dir: Path, requests: int, threads: int) -> dict[str, dict[str, float]]:
    x = np.random.default_rng(0).normal(size=(1, LAYERS[0])).astype(np.float32)
    runtime = OnnxRuntime()
    runtime.load(model_dir, ModelManifest.model_validate_json(
        (model_dir / "aip-model.json").read_text()), RuntimeOptions(threads=threads))
    expected = runtime.predict({"x": x})["y"]
    session = runtime._session
    results = {"in-process": timed(lambda: session.run(None, {"x": x}), requests)}

    json_body, _ = encode_infer_request({"x": x})
    binary_body, header_length = encode_infer_request({"x": x}, binary=True, binary_output=True)
    binary_headers = {"inference-header-content-length": str(header_length),
                      "content-type": "application/octet-stream"}
    json_headers = {"content-type": "application/json"}
    with ReplicaProcess(model_dir, "--threads", str(threads)) as replica, \
            httpx.Client(base_url=replica.url) as client:
        path = f"/v2/models/{replica.name}/infer"

        def post_json() -> httpx.Response:
            return client.post(path, content=json_body, headers=json_headers)

        def post_binary() -> httpx.Response:
            return client.post(path, content=binary_body, headers=binary_headers)

        check(decode_infer_response(post_json().content)["y"], expected)
        response = post_binary()
        check(decode_infer_response(response.content, int(
            response.headers["inference-header-content-length"]))["y"], expected)
        results["replica, JSON"] = timed(post_json, requests)
        results["replica, binary"] = timed(post_binary, requests)
        connection = http.client.HTTPConnection("127.0.0.1", replica.port)

        def post_stdlib() -> bytes:
            connection.request("POST", path, body=json_body, headers=json_headers)
            return connection.getresponse().read()

        check(decode_infer_response(post_stdlib())["y"], expected)
        results["replica, JSON (http.client)"] = timed(post_stdlib, requests)
        raw = RawClient(replica.port)
        raw_request = (f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: "
                       f"application/json\r\ncontent-length: {len(json_body)}\r\n\r\n"
                       ).encode() + json_body
        check(decode_infer_response(raw.request(raw_request))["y"], expected)
        results["replica, JSON (raw socket)"] = timed(lambda: raw.request(raw_request),
                                                      requests)
        results["live probe (no model)"] = timed(lambda: client.get("/v2/health/live"),
                                                 requests)
        connection.close()
    return results


def timed(call: Callable[[], Any], requests: int) -> dict[str, float]:
    for _ in range(min(200, requests)):
        call()
    samples = []
    for _ in range(requests):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    samples.sort()
    return {"median_ms": statistics.median(samples) * 1000,
            "p99_ms": samples[int(0.99 * (len(samples) - 1))] * 1000}


class RawClient:
    """HTTP/1.1 on a bare keep-alive socket: send bytes, read one Content-Length response."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pending = b""

    def request(self, raw: bytes) -> bytes:
        self.sock.sendall(raw)
        while b"\r\n\r\n" not in self.pending:
            self.pending += self.sock.recv(65536)
        head, _, rest = self.pending.partition(b"\r\n\r\n")
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        while len(rest) < length:
            rest += self.sock.recv(65536)
        self.pending = rest[length:]
        return rest[:length]


def check(actual: np.ndarray, expected: np.ndarray) -> None:
    if not np.allclose(actual, expected, rtol=1e-5, atol=1e-6):
        raise SystemExit("the replica's output differs from the in-process output")


def write_mlp(model_dir: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, weights, previous = [], [], "x"
    for index, (width_in, width_out) in enumerate(itertools.pairwise(LAYERS)):
        weights += [numpy_helper.from_array(
                        (rng.normal(size=(width_in, width_out)) / width_in ** 0.5)
                        .astype(np.float32), f"w{index}"),
                    numpy_helper.from_array(np.zeros(width_out, np.float32), f"b{index}")]
        output = "y" if index == len(LAYERS) - 2 else f"h{index}"
        nodes.append(helper.make_node("Gemm", [previous, f"w{index}", f"b{index}"],
                                      [output if output == "y" else f"g{index}"]))
        if output != "y":
            nodes.append(helper.make_node("Relu", [f"g{index}"], [output]))
        previous = output
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", LAYERS[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", LAYERS[-1]])],
        weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    model_dir.mkdir(parents=True)
    onnx.save(model, str(model_dir / "model.onnx"))
    (model_dir / "aip-model.json").write_text(json.dumps(
        {"format": 1, "flavor": "onnx", "path": "model.onnx"}))
    return model_dir


if __name__ == "__main__":
    main()
