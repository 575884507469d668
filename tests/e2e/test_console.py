"""The console as a person uses it: headless Chromium against a real ``aip up`` running real
jobs. Each test also takes a screenshot of its page (docs/img/ for the README with
AIP_UPDATE_SCREENSHOTS=1)."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

from aip.testing.server import AipServer, job_spec, wait_for
from tests.e2e.conftest import screenshot

expect = pytest.importorskip("playwright.sync_api").expect

SLEEP = "import time; print('sleeping', flush=True); time.sleep(120)"
# Waits for a file, not a fixed time: step 1 is shown alone for as long as the test looks.
# Gives up (failing the job) after 60 s so a test that never creates the file leaves no job.
STEP_2_AFTER_GO = ("import os, sys, time; print('step 1', flush=True); "
                   "go = any(os.path.exists('{go}') or time.sleep(0.1) for _ in range(600)); "
                   "go or sys.exit('no go file within 60 s'); print('step 2', flush=True)")
BAD_YAML = """name: broken
replicas:
  worker:
    command: [python, -c, "print(1)"]
    count: 0
"""


def running(server: AipServer, spec: dict[str, Any]) -> dict[str, Any]:
    job = server.client.submit_job(spec)
    return wait_for(lambda: (j := server.client.get_job(job["id"]))["state"] == "RUNNING" and j,
                    timeout=30, message=f"{job['id']} RUNNING")


def test_sign_in_lands_on_the_overview(page: Any, server: AipServer) -> None:
    assert page.url == server.url + "/"
    expect(page.locator("h1")).to_contain_text("Overview")


def test_the_overview_numbers_match_the_api(page: Any, server: AipServer) -> None:
    running(server, job_spec("shared-gpu", SLEEP, resources={"cpu": 1, "memory": "512Mi",
                                                              "gpu": 0.5}))
    page.goto(server.url + "/")
    nodes = server.client.list_nodes()
    cpu = page.locator("[data-testid=meter-cpu]")
    assert float(cpu.locator("[data-role=used]").inner_text()) == pytest.approx(
        sum(n["allocated"]["cpu"] for n in nodes))
    assert float(cpu.locator("[data-role=total]").inner_text()) == sum(n["cpu"] for n in nodes)
    gpu = page.locator("[data-testid=meter-gpu]")
    assert float(gpu.locator("[data-role=used]").inner_text()) == pytest.approx(
        sum(n["allocated"]["gpu"] for n in nodes))
    assert float(gpu.locator("[data-role=total]").inner_text()) == sum(
        len(n["gpus"]) for n in nodes)
    for state in ("RUNNING", "SUCCEEDED", "PENDING"):
        shown = page.locator(f"[data-testid=count-{state}] .count").inner_text()
        assert int(shown) == server.client.list_jobs(state=[state], limit=1)["total"], state
    screenshot(page, "console-overview")


def test_the_nodes_page_shows_a_fractional_gpu_share(page: Any, server: AipServer) -> None:
    page.goto(server.url + "/nodes")
    shared = page.locator("[data-testid=gpu-cell][data-allocated='0.5']")
    expect(shared).to_have_count(1)
    expect(shared).to_contain_text("shared-gpu/worker-0")
    expect(shared).to_contain_text("×0.5")
    screenshot(page, "console-nodes")


def test_a_pending_job_shows_its_reason(page: Any, server: AipServer) -> None:
    running(server, job_spec("quota-holder", SLEEP, queue="tiny",
                             resources={"cpu": 1, "memory": "128Mi"}))
    waiter = server.client.submit_job(job_spec("quota-waiter", "print('done')", queue="tiny",
                                               resources={"cpu": 1, "memory": "128Mi"}))
    reason = wait_for(lambda: "quota" in (r := server.client.get_job(waiter["id"])["reason"]
                                          or "") and r, timeout=20, message="a quota reason")
    page.goto(f"{server.url}/jobs/{waiter['id']}")
    expect(page.locator("[data-testid=job-reason]")).to_have_text(reason)
    assert "quota" in reason and "tiny" in reason
    page.goto(server.url + "/queues")
    expect(page.locator("[data-testid=queue-tiny] [data-testid=pending-reason]")).to_have_text(
        reason)
    page.locator("[data-testid=queue-tiny]").scroll_into_view_if_needed()
    screenshot(page, "console-queues")


def test_a_job_submitted_through_the_form_runs_streams_its_logs_and_succeeds(
        page: Any, server: AipServer, tmp_path: Path) -> None:
    page.goto(server.url + "/submit")
    page.fill("#quick-form input[name=name]", "from-form")
    go = tmp_path / "go"  # the job prints step 2 once the test creates it (same machine)
    page.fill("#quick-form input[name=command]",
              f"{sys.executable} -c \"{STEP_2_AFTER_GO.format(go=str(go))}\"")
    page.fill("#quick-form input[name=cpu]", "0.5")
    page.fill("#quick-form input[name=memory]", "256Mi")
    page.fill("#quick-form input[name=user]", "alice")
    page.click("[data-testid=quick-submit]")
    page.wait_for_url(re.compile(r".*/jobs/from-form-[0-9a-f]+$"))
    job_id = page.url.rsplit("/", 1)[1]
    state = page.locator("[data-testid=job-state]")
    logs = page.locator("[data-testid=logs]")
    expect(state).to_have_text("RUNNING", timeout=20_000)
    expect(logs).to_contain_text("step 1", timeout=10_000)
    assert "step 2" not in logs.inner_text()  # streamed while the job still runs
    go.touch()
    server.client.log_metrics(job_id, [{"key": "loss", "step": s, "value": 2.0 / (1 + s)}
                                       for s in range(40)])
    expect(state).to_have_text("SUCCEEDED", timeout=20_000)
    expect(logs).to_contain_text("step 2")
    _register_a_model(server, job_id, tmp_path)
    page.reload()
    expect(page.locator("figure.chart polyline")).to_have_count(1)
    screenshot(page, "console-job")


def test_cancel_stops_a_running_job(page: Any, server: AipServer) -> None:
    job = running(server, job_spec("to-cancel", SLEEP))
    page.goto(f"{server.url}/jobs/{job['id']}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("[data-testid=cancel]")
    expect(page.locator("[data-testid=job-state]")).to_have_text("CANCELLED", timeout=20_000)
    assert server.client.get_job(job["id"])["state"] == "CANCELLED"


def test_resubmit_runs_the_same_spec_as_a_new_job(page: Any, server: AipServer) -> None:
    first = server.client.submit_job(job_spec("again", "print('ran once more')"))
    assert server.client.wait_job(first["id"], timeout=30)["state"] == "SUCCEEDED"
    page.goto(f"{server.url}/jobs/{first['id']}")
    page.click("[data-testid=resubmit]")
    page.wait_for_url(re.compile(r"/jobs/(?!" + re.escape(first["id"]) + r"$)[^/]+$"))
    second_id = page.url.rsplit("/", 1)[1]
    expect(page.locator("[data-testid=job-state]")).to_have_text("SUCCEEDED", timeout=30_000)
    second = server.client.get_job(second_id)
    assert second["spec"] == server.client.get_job(first["id"])["spec"]
    assert server.client.job_logs(second_id).strip() == "ran once more"


def test_invalid_yaml_is_rejected_with_the_field_named(page: Any, server: AipServer) -> None:
    page.goto(server.url + "/submit")
    page.fill("#yaml", BAD_YAML)
    errors = page.locator("[data-testid=yaml-errors]")
    expect(errors).to_contain_text("replicas.worker.count")
    expect(errors).to_contain_text("greater than or equal to 1 (line 5)")
    expect(page.locator("#yaml-gutter .bad")).to_have_text("5")
    screenshot(page, "console-submit")
    page.click("[data-testid=yaml-submit]")  # the server refuses it too, naming the field
    expect(page.locator("[data-testid=yaml-refused]")).to_contain_text("replicas.worker.count")
    page.fill("#yaml", BAD_YAML.replace("count: 0", "count: 1"))
    expect(page.locator("[data-testid=yaml-status]")).to_contain_text("valid job spec")
    expect(errors).to_be_empty()


def test_the_jobs_list_filters_by_user_and_state(page: Any, server: AipServer) -> None:
    page.goto(server.url + "/jobs?user=alice")
    rows = page.locator("table.jobs tbody tr[data-job]")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("from-form")
    page.goto(server.url + "/jobs?state=CANCELLED")
    expect(rows.first).to_contain_text("CANCELLED")
    page.goto(server.url + "/jobs")
    screenshot(page, "console-jobs")


def test_models_show_versions_aliases_and_lineage(page: Any, server: AipServer) -> None:
    page.goto(server.url + "/models")
    expect(page.locator("table")).to_contain_text("console-demo")
    page.click("text=console-demo")
    expect(page.locator("table")).to_contain_text("from-form-")
    expect(page.locator("table")).to_contain_text("loss=")
    expect(page.locator("body")).to_contain_text("@production")
    # The models and endpoints pages with a served model, and their screenshots:
    # test_console_serving.py.


def _register_a_model(server: AipServer, job_id: str, tmp_path: Path) -> None:
    """Lineage for the models page: the form's job 'produced' an ONNX model."""
    from tests.unit.registry.builders import onnx_model

    server.client.upload_artifact(job_id, onnx_model(tmp_path / "model.onnx"), "model.onnx")
    version = server.client.register_model_from_job("console-demo", job_id, "model.onnx",
                                                    "onnx", description="a demo model")
    server.client.set_alias("console-demo", "production", version["version"])
