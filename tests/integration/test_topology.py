"""Topology through a real ``aip up``: declared nodes in two RDMA domains; a gang asking for
``topology: required`` never spans them, and waits, saying why, when no domain has room."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from aip.testing.server import AipServer, wait_for

SLEEP = [sys.executable, "-c", "import time; time.sleep(30)"]


def nodes() -> list[dict[str, Any]]:
    return [{"name": f"{pod}{i}", "cpu": 2, "memory": "4Gi",
             "labels": {"aip.io/rdma-domain": f"pod-{pod}"}}
            for pod in ("a", "b") for i in (1, 2)]


@pytest.fixture(scope="module")
def pods(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with AipServer(tmp_path_factory.mktemp("aip-home"), nodes=nodes()) as running:
        yield running


def gang(name: str, count: int, topology: str) -> dict[str, Any]:
    return {"name": name, "topology": topology, "replicas": {"worker": {
        "count": count, "command": SLEEP, "resources": {"cpu": 1, "memory": "64Mi"}}}}


def running(server: AipServer, job: dict[str, Any]) -> dict[str, Any]:
    return wait_for(lambda: (j := server.client.get_job(job["id"]))["state"] == "RUNNING" and j,
                    timeout=30, message=f"{job['name']} running")


def domain_of(node: str) -> str:
    return f"pod-{node[0]}"


def test_required_gangs_stay_in_one_domain_and_wait_when_none_has_room(
        pods: AipServer) -> None:
    first = running(pods, pods.client.submit_job(gang("first", 3, "required")))
    assert first["domains"] == 1
    assert len({domain_of(r["node"]) for r in first["replicas"]}) == 1
    second = running(pods, pods.client.submit_job(gang("second", 3, "required")))
    assert second["domains"] == 1
    assert {domain_of(r["node"]) for r in second["replicas"]} != {
        domain_of(r["node"]) for r in first["replicas"]}
    # One CPU is left in each domain: two replicas fit the cluster, not one domain.
    waiting = pods.client.submit_job(gang("waits", 2, "required"))
    job = wait_for(lambda: (j := pods.client.get_job(waiting["id"]))["reason"] and
                   "aip.io/rdma-domain" in j["reason"] and j, timeout=20,
                   message="the topology reason")
    assert job["state"] == "PENDING" and job["replicas"] == []
    pods.client.cancel_job(waiting["id"])
    spanning = running(pods, pods.client.submit_job(gang("spans", 2, "preferred")))
    assert spanning["domains"] == 2  # preferred falls back to spanning
    for done in (first, second, spanning):
        pods.client.cancel_job(done["id"])
    for done in (first, second, spanning):
        pods.client.wait_job(done["id"], timeout=20)


def test_a_required_gang_larger_than_any_domain_is_rejected_at_submit(pods: AipServer) -> None:
    from aip.errors import Unschedulable

    with pytest.raises(Unschedulable, match="rdma-domain"):
        pods.client.submit_job(gang("too-big", 5, "required"))
