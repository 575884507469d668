"""Serving end to end through a real ``aip up``: register a model, deploy it, call it through
the router; canary weights, a rolling update and a killed replica under load, autoscaling,
scale to zero, endpoint auth. Replicas are real jobs running the replica server."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from aip.testing.server import AipServer, free_port, wait_for

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

FEATURES = 4


def onnx_linear(path: Path, scale: float) -> Path:
    """y = x @ W * scale: a model whose answer tells which version served it."""
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(
        (np.arange(FEATURES * 2, dtype=np.float32).reshape(FEATURES, 2) * scale), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])], "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", FEATURES])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def in_process(path: Path, rows: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"x": rows})[0])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AipServer]:
    home = tmp_path_factory.mktemp("aip-home")
    with AipServer(home, nodes=[{"name": "node-a", "cpu": 8, "memory": "8Gi"}],
                   server={"router_port": free_port()}) as running:
        yield running


@pytest.fixture(scope="module")
def models(server: AipServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("models")
    paths = {str(v): onnx_linear(directory / f"v{v}.onnx", float(v)) for v in (1, 2)}
    for version in ("1", "2"):
        server.client.register_model("linear", paths[version], "onnx")
    server.client.set_alias("linear", "production", 1)
    return paths


def ready_replicas(server: AipServer, name: str, count: int, version: str | None = None,
                   timeout: float = 60) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        endpoint = server.client.get_endpoint(name)
        ready = [r for r in endpoint["replica_list"] if r["state"] == "ready"
                 and (version is None or r["version"] == version)]
        return endpoint if len(ready) >= count else None
    return wait_for(check, timeout=timeout, interval=0.2, message=f"{count} ready replicas")


def routed(server: AipServer, name: str, timeout: float = 30) -> None:
    """Wait until the router has the endpoint in its table (the controller pushes the table a
    moment after a deploy); before that the router answers 404 for it."""
    router = server.client.get_endpoint(name)["url"].rsplit("/endpoints/", 1)[0]
    admin = {"Authorization": f"Bearer {server.token}"}  # /-/stats needs the platform token

    def known() -> bool:
        try:
            stats = httpx.get(router + "/-/stats", headers=admin, timeout=5)
        except httpx.HTTPError:  # the router starts with the first endpoint
            return False
        return stats.status_code == 200 and name in stats.json()["endpoints"]
    wait_for(known, timeout=timeout, interval=0.1, message=f"the router routes {name}")


def test_deploy_and_invoke_gives_the_models_predictions(server: AipServer,
                                                        models: dict[str, Path]) -> None:
    deployed = server.client.deploy_endpoint({"name": "lin", "model": "models:/linear@production"})
    assert deployed["token"]
    ready_replicas(server, "lin", 1)
    rows = np.random.default_rng(0).random((5, FEATURES), dtype=np.float32)
    answer = server.client.invoke_endpoint("lin", {"instances": rows.tolist()},
                                           token=deployed["token"])
    np.testing.assert_allclose(np.asarray(answer["predictions"]),
                               in_process(models["1"], rows), rtol=1e-5)
    oip = server.client.invoke_endpoint("lin", {"inputs": [{
        "name": "x", "shape": [5, FEATURES], "datatype": "FP32",
        "data": rows.ravel().tolist()}]}, token=deployed["token"])
    np.testing.assert_allclose(np.asarray(oip["outputs"][0]["data"]).reshape(5, 2),
                               in_process(models["1"], rows), rtol=1e-5)


def test_an_endpoint_needs_its_token(server: AipServer, models: dict[str, Path]) -> None:
    url = server.client.get_endpoint("lin")["url"] + "/v1/models/lin:predict"
    body = {"instances": [[0.0] * FEATURES]}
    assert httpx.post(url, json=body).status_code == 401
    assert httpx.post(url, json=body, headers={"Authorization": "Bearer nope"}).status_code == 401


def test_bad_input_gets_a_4xx_naming_it_and_the_replica_stays_healthy(
        server: AipServer, models: dict[str, Path]) -> None:
    url = server.client.get_endpoint("lin")["url"]
    headers = {"Authorization": f"Bearer {server.token}"}
    infer = url + "/v2/models/lin/infer"
    cases = [
        ({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]},
         "shape"),
        ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "BYTES",
                      "data": ["a", "b", "c", "d"]}]}, "x"),
        ({"inputs": []}, "x"),
    ]
    for body, word in cases:
        response = httpx.post(infer, json=body, headers=headers)
        assert 400 <= response.status_code < 500 and word in response.text, response.text
    bad_json = httpx.post(infer, content=b"{not json", headers=headers)
    assert bad_json.status_code == 400
    big = httpx.post(infer, content=b"x" * (65 * 2**20), headers=headers)
    assert big.status_code == 413
    good = httpx.post(url + "/v1/models/lin:predict", headers=headers,
                      json={"instances": [[1.0] * FEATURES]})
    assert good.status_code == 200


def test_a_canary_takes_its_share_of_the_traffic(server: AipServer,
                                                 models: dict[str, Path]) -> None:
    server.client.deploy_endpoint({"name": "split", "versions": [
        {"model": "models:/linear/1", "weight": 90}, {"model": "models:/linear/2", "weight": 10}]})
    ready_replicas(server, "split", 1, "linear-1")
    ready_replicas(server, "split", 1, "linear-2")
    url = server.client.get_endpoint("split")["url"] + "/v1/models/split:predict"
    headers = {"Authorization": f"Bearer {server.token}"}
    seen: Counter[float] = Counter()
    with httpx.Client(headers=headers) as client:
        for _ in range(1000):
            prediction = client.post(url, json={"instances": [[1.0, 0, 0, 0]]}).json()
            seen[prediction["predictions"][0][1]] += 1  # W[0][1] * scale: 1.0 or 2.0
    assert abs(seen[2.0] / 1000 - 0.10) <= 0.05, seen
    server.client.delete_endpoint("split")


class Load:
    """Constant load from ``threads`` clients, each one request at a time: counts answers by
    status."""

    def __init__(self, url: str, token: str, threads: int = 4) -> None:
        self.url, self.token = url, token
        self.statuses: Counter[int] = Counter()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {self.token}"},
                          timeout=30) as client:
            while not self._stop.is_set():
                try:
                    status = client.post(self.url, json={"instances": [[1.0, 0, 0, 0]]}
                                         ).status_code
                except httpx.HTTPError:
                    status = 599
                self.statuses[status] += 1

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    @property
    def failed(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200)


def test_a_rolling_update_under_load_fails_no_request(server: AipServer,
                                                      models: dict[str, Path]) -> None:
    server.client.deploy_endpoint({"name": "roll", "model": "models:/linear/1",
                                   "min_replicas": 2, "max_replicas": 2})
    ready_replicas(server, "roll", 2)
    url = server.client.get_endpoint("roll")["url"] + "/v1/models/roll:predict"
    with Load(url, server.token) as load:
        time.sleep(1)
        server.client.deploy_endpoint({"name": "roll", "model": "models:/linear/2",
                                       "min_replicas": 2, "max_replicas": 2})
        wait_for(lambda: {r["version"] for r in server.client.get_endpoint("roll")[
            "replica_list"]} == {"linear-2"}, timeout=90, interval=0.3,
                 message="only the new version left")
        time.sleep(1)
    assert load.failed == 0, load.statuses
    assert sum(load.statuses.values()) > 50


def test_killing_a_replica_under_load_costs_almost_nothing_and_it_is_replaced(
        server: AipServer, models: dict[str, Path]) -> None:
    endpoint = ready_replicas(server, "roll", 2)
    victim = endpoint["replica_list"][0]["job_id"]
    pid = server.client.get_job(victim)["replicas"][0]["pid"]
    url = endpoint["url"] + "/v1/models/roll:predict"
    import psutil

    with Load(url, server.token) as load:
        time.sleep(1)
        for child in psutil.Process(pid).children(recursive=True):
            os.kill(child.pid, signal.SIGKILL)
        time.sleep(1)
        ready_replicas(server, "roll", 2, timeout=90)
        time.sleep(0.5)
    total = sum(load.statuses.values())
    assert load.failed <= 0.005 * total, load.statuses
    server.client.delete_endpoint("roll")


def test_load_scales_out_to_max_and_quiet_scales_back_to_min(
        server: AipServer, models: dict[str, Path]) -> None:
    # 8 clients keep well over the 3 in flight that max_replicas × target_in_flight asks
    # for, and the cooldown is long enough that a moment of low in-flight under load does not
    # scale in before the third replica is ready.
    cooldown = 15
    server.client.deploy_endpoint({
        "name": "elastic", "model": "models:/linear/1", "min_replicas": 1, "max_replicas": 3,
        "autoscaling": {"target_in_flight": 1, "scale_in_cooldown": f"{cooldown}s"}})
    ready_replicas(server, "elastic", 1)
    url = server.client.get_endpoint("elastic")["url"] + "/v1/models/elastic:predict"
    with Load(url, server.token, threads=8):
        wait_for(lambda: server.client.get_endpoint("elastic")["replicas"] == 3, timeout=30,
                 message="scale out to 3")
        ready_replicas(server, "elastic", 3, timeout=90)
    wait_for(lambda: len(server.client.get_endpoint("elastic")["replica_list"]) == 1,
             timeout=cooldown + 60, interval=0.3, message="scale in to 1")
    server.client.delete_endpoint("elastic")


def test_scale_to_zero_and_a_measured_cold_start(server: AipServer,
                                                 models: dict[str, Path]) -> None:
    server.client.deploy_endpoint({
        "name": "sleepy", "model": "models:/linear/1", "min_replicas": 0, "max_replicas": 1,
        "autoscaling": {"scale_to_zero_after": "2s", "scale_in_cooldown": "1s"}})
    wait_for(lambda: not server.client.get_endpoint("sleepy")["replica_list"], timeout=30,
             message="zero replicas")
    routed(server, "sleepy")  # else the request below may get 404, not a cold start
    started = time.perf_counter()
    answer = server.client.invoke_endpoint("sleepy", {"instances": [[1.0, 0, 0, 0]]})
    cold = time.perf_counter() - started
    assert answer["predictions"][0] == [0.0, 1.0]
    endpoint = server.client.get_endpoint("sleepy")
    assert endpoint["replica_list"] and cold > 0.2
    print(f"cold start: {cold:.2f}s")
    server.client.delete_endpoint("sleepy")


def test_on_object_storage_a_trained_model_is_registered_deployed_and_served(
        tmp_path: Path) -> None:
    """Storage apart from compute: the job logs metrics and its model to S3 (moto's server on
    loopback); the registry and the replicas read it from there."""
    from aip.testing.s3 import MotoS3

    if reason := MotoS3.unavailable():
        pytest.skip(reason)
    train = tmp_path / "train.py"
    train.write_text(f"""
import os, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
import aip
from test_endpoints import onnx_linear
from pathlib import Path
for step in range(5):
    aip.log_metrics(step=step, loss=1.0 / (step + 1))
path = onnx_linear(Path(os.environ["AIP_OUTPUT_DIR"]) / "model.onnx", 3.0)
aip.log_artifact(str(path))
aip.flush()
""")
    with MotoS3(tmp_path / "s3") as s3, AipServer(
            tmp_path / "aip-home", nodes=[{"name": "node-a", "cpu": 4, "memory": "4Gi"}],
            server={"router_port": free_port()}, storage=s3.storage_config,
            env=s3.env) as server:
        job = server.client.submit_job({"name": "train", "command": [sys.executable, str(train)],
                                        "resources": {"cpu": 0.5}})
        assert server.client.wait_job(job["id"], timeout=60)["state"] == "SUCCEEDED"
        assert [p["value"] for p in server.client.job_metrics(job["id"], key="loss")][-1] == 0.2
        assert any(info.key.endswith("jobs/" + job["id"] + "/model.onnx")
                   for info in s3.store("").list(""))
        version = server.client.register_model_from_job("lin3", job["id"], "model.onnx", "onnx")
        assert version["source_job"] == job["id"] and version["metrics"]["loss"] == 0.2
        server.client.set_alias("lin3", "production", version["version"])
        deployed = server.client.deploy_endpoint({"name": "lin3",
                                                  "model": "models:/lin3@production"})
        ready_replicas(server, "lin3", 1)
        rows = np.random.default_rng(1).random((3, FEATURES), dtype=np.float32)
        answer = server.client.invoke_endpoint("lin3", {"instances": rows.tolist()},
                                               token=deployed["token"])
        expected = in_process(onnx_linear(tmp_path / "expected.onnx", 3.0), rows)
        np.testing.assert_allclose(np.asarray(answer["predictions"]), expected, rtol=1e-5)
