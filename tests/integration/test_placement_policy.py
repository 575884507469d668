"""The live platform places jobs with AIP's default policy — the one the trace simulator
measures — including GPU shares and GPU-model constraints."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aip.scheduler.policies import DEFAULT_POLICY
from aip.testing.server import AipServer, job_spec, wait_for

MIXED = [{"name": "t4-node", "cpu": 8, "memory": "16Gi", "gpus": {"count": 2, "model": "T4"}},
         {"name": "v100-node", "cpu": 8, "memory": "16Gi",
          "gpus": {"count": 2, "model": "V100M32"}}]
HOLD = "import time; time.sleep(30)"


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AipServer]:
    with AipServer(tmp_path_factory.mktemp("aip-mixed"), nodes=MIXED) as running:
        yield running


def _running(server: AipServer, job_id: str) -> dict:  # type: ignore[type-arg]
    return wait_for(lambda: (j := server.client.get_job(job_id))["state"] == "RUNNING" and j,
                    message=f"{job_id} RUNNING")


def test_type_constrained_and_fractional_jobs_are_placed_by_the_default_policy(
        mixed: AipServer) -> None:
    constrained = mixed.client.submit_job(job_spec(
        "needs-v100", HOLD, resources={"cpu": 1, "gpu": 1, "gpu_type": ["V100M32"]}))
    first = mixed.client.submit_job(job_spec("half-a", HOLD, resources={"cpu": 1, "gpu": 0.5}))
    placed = _running(mixed, constrained["id"])["replicas"][0]
    assert placed["node"] == "v100-node" and len(placed["gpus"]) == 1
    half = _running(mixed, first["id"])["replicas"][0]
    assert half["gpu_share"] == 0.5
    second = mixed.client.submit_job(job_spec("half-b", HOLD, resources={"cpu": 1, "gpu": 0.5}))
    other = _running(mixed, second["id"])["replicas"][0]
    # The second half shares the first one's GPU instead of fragmenting a free one.
    assert (other["node"], other["gpus"]) == (half["node"], half["gpus"])
    for job in (constrained, first, second):
        admitted = [e["message"] for e in mixed.client.job_events(job["id"])
                    if e["type"] == "Admitted"]
        assert admitted and admitted[0].endswith(f"placed by policy {DEFAULT_POLICY}")
        mixed.client.cancel_job(job["id"])
    for job in (constrained, first, second):
        assert mixed.client.wait_job(job["id"], timeout=15)["state"] == "CANCELLED"
    nodes = {n["name"]: n for n in mixed.client.list_nodes()}
    assert all(g["allocated_milli"] == 0 for n in nodes.values() for g in n["gpus"])
