"""The Models and Endpoints pages with something on them: a real ONNX model registered
through the SDK (two versions, ``production`` on v1, v2 made by a job), served by a real
endpoint (one replica through the real router), then removed. Headless Chromium, nothing
mocked. Screenshots: console-models, console-model, console-endpoints, console-endpoint."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from aip.testing.server import AipServer, job_spec, wait_for
from tests.e2e.conftest import screenshot
from tests.unit.registry.builders import onnx_model

expect = pytest.importorskip("playwright.sync_api").expect
ort = pytest.importorskip("onnxruntime")

MODEL = "churn"
ENDPOINT = "churn-api"  # not the model's name: the replica serves under the endpoint's
ROWS = [[0.5, 1.25, -2.0, 3.0], [1.0, 0.0, 0.0, 4.5]]
# A field name that is also markup: the page must show it as text.
HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def model(server: AipServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """v1 uploaded from this process (@production); v2 with lineage: a job and its metrics."""
    path = onnx_model(tmp_path_factory.mktemp("models") / "churn.onnx")
    server.client.register_model(MODEL, path, description="churn risk from four features")
    job = server.client.submit_job(job_spec("train-churn", "print('trained')"))
    server.client.wait_job(job["id"], timeout=30)
    server.client.log_metrics(job["id"], [{"key": "accuracy", "step": 1, "value": 0.93}])
    server.client.register_model(MODEL, path, source_job=job["id"])
    server.client.set_alias(MODEL, "production", 1)
    return path


@pytest.fixture(scope="module")
def endpoint(server: AipServer, model: Path) -> Iterator[dict[str, Any]]:
    """One small replica of models:/churn@production, ready; deleted afterwards whatever
    happened (the test that deletes it through the SDK checks the replica stops)."""
    server.client.deploy_endpoint({"name": ENDPOINT, "model": f"models:/{MODEL}@production",
                                   "min_replicas": 1, "max_replicas": 1,
                                   "resources": {"cpu": 0.5, "memory": "512Mi"}})

    def ready() -> dict[str, Any] | None:
        found = server.client.get_endpoint(ENDPOINT)
        return found if any(r["state"] == "ready" for r in found["replica_list"]) else None

    yield wait_for(ready, timeout=60, interval=0.2, message=f"{ENDPOINT} ready")
    if any(e["name"] == ENDPOINT for e in server.client.list_endpoints()):
        server.client.delete_endpoint(ENDPOINT)


def _shows(locator: Any, text: str) -> bool:
    return bool(locator.inner_text() == text)


def in_process(path: Path, rows: list[list[float]]) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"x": np.asarray(rows, dtype=np.float32)})[0])


def test_the_models_list_shows_the_versions_and_the_production_alias(
        page: Any, server: AipServer, model: Path) -> None:
    page.goto(server.url + "/models")
    row = page.locator(f"[data-testid=model-{MODEL}]")
    expect(row.locator("[data-role=latest]")).to_have_text("2")
    expect(row.locator("[data-role=versions]")).to_have_text("2")
    expect(row).to_contain_text("@production → v1")
    expect(row).to_contain_text("churn risk from four features")
    screenshot(page, "console-models")


def test_the_model_page_shows_flavor_signature_aliases_and_lineage(
        page: Any, server: AipServer, model: Path) -> None:
    page.goto(server.url + "/models")
    page.click(f"[data-testid=model-{MODEL}] a")
    page.wait_for_url(f"{server.url}/models/{MODEL}")
    expect(page.locator("[data-testid=aliases]")).to_contain_text(
        f"models:/{MODEL}@production → v1")
    first, second = (page.locator(f"[data-testid=version-{v}]") for v in (1, 2))
    for row in (first, second):
        expect(row.locator("[data-role=flavor]")).to_have_text("onnx")
        signature = row.locator("[data-role=signature]")
        expect(signature).to_contain_text("x float32 [-1, 4]")
        expect(signature).to_contain_text("y float32 [-1, 2]")
    expect(first.locator("[data-role=aliases]")).to_have_text("@production")
    expect(first.locator("[data-role=source]")).to_have_text("upload")
    expect(second.locator("[data-role=aliases]")).to_be_empty()
    job = server.client.get_model_version(MODEL, 2)["source_job"]
    expect(second.locator("[data-role=source] a")).to_have_attribute("href", f"/jobs/{job}")
    expect(second.locator("[data-role=metrics]")).to_have_text("accuracy=0.93")
    screenshot(page, "console-model")


def test_the_endpoints_list_shows_the_ready_replica_and_the_traffic(
        page: Any, server: AipServer, endpoint: dict[str, Any]) -> None:
    page.goto(server.url + "/endpoints")
    row = page.locator(f"[data-testid=endpoint-{ENDPOINT}]")
    expect(row.locator("[data-role=state]")).to_have_text("ACTIVE")
    expect(row.locator("[data-role=replicas]")).to_have_text("1/1")
    expect(row.locator("[data-role=traffic]")).to_have_text(f"{MODEL}-1 100%")
    expect(row).to_contain_text(endpoint["url"])
    screenshot(page, "console-endpoints")


def test_the_endpoint_page_shows_replicas_traffic_and_the_routers_numbers(
        page: Any, server: AipServer, endpoint: dict[str, Any]) -> None:
    page.goto(f"{server.url}/endpoints/{ENDPOINT}")
    replica = endpoint["replica_list"][0]
    replica_row = page.locator(f"[data-testid=replica-{replica['job_id']}]")
    expect(replica_row).to_contain_text("ready")
    expect(replica_row).to_contain_text(f"{MODEL}-1")
    traffic = page.locator(f"[data-testid=version-{MODEL}-1]")
    expect(traffic).to_contain_text(f"models:/{MODEL}/1")
    expect(traffic.locator("[data-role=weight]")).to_have_text("100%")
    expect(traffic.locator("[data-role=ready]")).to_have_text("1")
    requests = page.locator("[data-testid=endpoint-requests]")
    sent = 0
    with httpx.Client(headers={"Authorization": f"Bearer {server.token}"}) as router:
        for burst in (10, 20, 30):  # rising load through the router, each seen by a refresh
            for _ in range(burst):
                answer = router.post(f"{endpoint['url']}/v1/models/{ENDPOINT}:predict",
                                     json={"instances": ROWS})
                assert answer.status_code == 200, answer.text
            sent += burst
            wait_for(functools.partial(_shows, requests, str(sent)), timeout=15,
                     interval=0.2, message=f"the page's live refresh to count {sent} requests")
    for chart in ("qps-chart", "latency-chart"):
        points = page.locator(f"[data-testid={chart}] polyline").get_attribute("points")
        assert len(points.split()) >= 3, (chart, points)
    assert float(page.locator("[data-testid=endpoint-latency]").inner_text()) > 0
    assert page.locator("[data-testid=endpoint-errors]").inner_text() == "0"
    screenshot(page, "console-endpoint")


def test_a_request_sent_from_the_page_gets_the_models_prediction(
        page: Any, server: AipServer, model: Path, endpoint: dict[str, Any]) -> None:
    page.goto(f"{server.url}/endpoints/{ENDPOINT}")
    form = page.locator("[data-testid=try-form]")
    expect(form.locator("input[name=path]")).to_have_value(f"/v1/models/{ENDPOINT}:predict")
    assert json.loads(form.locator("textarea[name=body]").input_value()) == {
        "instances": [[0.0, 0.0, 0.0, 0.0]]}  # from the signature: a request that works
    form.locator("textarea[name=body]").fill(json.dumps({"instances": ROWS}))
    form.locator("button[type=submit]").click()
    expect(page.locator("[data-testid=trial-status]")).to_have_text("200")
    shown = np.asarray(json.loads(page.locator("[data-testid=trial-response]").inner_text())[
        "predictions"])
    np.testing.assert_allclose(shown, in_process(model, ROWS), rtol=1e-6)
    sdk = server.client.invoke_endpoint(ENDPOINT, {"instances": ROWS})["predictions"]
    np.testing.assert_allclose(shown, np.asarray(sdk), rtol=1e-6)
    # The answer stays on the page while its live parts keep refreshing.
    before = page.locator("[data-testid=endpoint-requests]").inner_text()
    server.client.invoke_endpoint(ENDPOINT, {"instances": ROWS})
    wait_for(lambda: page.locator("[data-testid=endpoint-requests]").inner_text() != before,
             timeout=15, interval=0.3, message="a live refresh after the request")
    expect(page.locator("#live-dot")).not_to_have_class(re.compile("off"))
    expect(page.locator("[data-testid=trial-status]")).to_have_text("200")


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/v1/models/churn-api:predict", {"instances": [[1.0, 2.0, 3.0]]}, "inputs.x"),
    ("/v2/models/churn-api/infer", {"inputs": [{"name": HOSTILE, "shape": [1, 4],
                                                "datatype": "FP32", "data": [1, 2, 3, 4]}]},
     f"inputs.{HOSTILE}"),
], ids=["wrong-shape", "unknown-input-named-in-markup"])
def test_a_bad_request_shows_the_4xx_naming_the_field_as_text(
        page: Any, server: AipServer, endpoint: dict[str, Any], path: str,
        body: dict[str, Any], field: str) -> None:
    page.goto(f"{server.url}/endpoints/{ENDPOINT}")
    dialogs: list[str] = []  # an alert() from markup in the answer would land here

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    form = page.locator("[data-testid=try-form]")
    form.locator("input[name=path]").fill(path)
    form.locator("textarea[name=body]").fill(json.dumps(body))
    form.locator("button[type=submit]").click()
    expect(page.locator("[data-testid=trial-status]")).to_have_text("400")
    answer = page.locator("[data-testid=trial-response]")
    expect(answer).to_contain_text(field)
    assert json.loads(answer.inner_text())["field"] == field
    expect(answer.locator("img")).to_have_count(0)
    expect(form.locator("textarea[name=body]")).to_have_value(json.dumps(body))
    assert dialogs == []


def test_deleting_the_endpoint_stops_its_replica(page: Any, server: AipServer,
                                                 endpoint: dict[str, Any]) -> None:
    replicas = [r["job_id"] for r in server.client.get_endpoint(ENDPOINT)["replica_list"]]
    server.client.delete_endpoint(ENDPOINT)
    wait_for(lambda: all(server.client.get_job(job)["state"] in ("SUCCEEDED", "CANCELLED")
                         for job in replicas), timeout=30, interval=0.2,
             message="the endpoint's replicas to stop")
    wait_for(lambda: not any(e["name"] == ENDPOINT for e in server.client.list_endpoints()),
             timeout=30, interval=0.2, message=f"{ENDPOINT} gone")
    page.goto(server.url + "/endpoints")
    expect(page.locator(f"[data-testid=endpoint-{ENDPOINT}]")).to_have_count(0)
