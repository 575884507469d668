"""Priorities and preemption on a small node (2 GPUs), against a real server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aip.testing.server import AipServer, job_spec, wait_for

SMALL_NODE = [{"name": "small", "cpu": 4, "memory": "8Gi", "gpus": {"count": 2, "model": "A10"}}]
HOLD = "import time; print('running', flush=True); time.sleep(60)"


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AipServer]:
    with AipServer(tmp_path_factory.mktemp("aip-small"), nodes=SMALL_NODE) as running:
        yield running


def test_a_higher_priority_job_preempts_and_the_victim_is_requeued(small: AipServer) -> None:
    low = small.client.submit_job(job_spec("low", HOLD, priority=0,
                                           resources={"cpu": 1, "gpu": 2}))
    wait_for(lambda: small.client.get_job(low["id"])["state"] == "RUNNING", message="low runs")
    high = small.client.submit_job(job_spec("high", "print('high done')", priority=10,
                                            resources={"cpu": 1, "gpu": 2}))
    done = small.client.wait_job(high["id"], timeout=30)
    assert done["state"] == "SUCCEEDED"
    events = [e["type"] for e in small.client.job_events(low["id"])]
    assert "Preempted" in events and "Requeued" in events
    victim = wait_for(lambda: (j := small.client.get_job(low["id"]))["state"] == "RUNNING" and j,
                      message="the victim to run again")
    assert victim["preemptions"] == 1 and victim["attempt"] == 2
    assert victim["max_retries"] == 0  # preemption did not count as a failure
    small.client.cancel_job(low["id"])
    assert small.client.wait_job(low["id"], timeout=15)["state"] == "CANCELLED"


def test_higher_priority_pending_jobs_start_first(small: AipServer) -> None:
    blocker = small.client.submit_job(job_spec("blocker", HOLD, priority=100,
                                               resources={"cpu": 1, "gpu": 2}))
    wait_for(lambda: small.client.get_job(blocker["id"])["state"] == "RUNNING", message="run")
    order_file = small.home / "order.txt"
    code = f"open({str(order_file)!r}, 'a').write(__import__('os').environ['AIP_JOB_NAME'] + '\\n')"
    names = [("first-low", 1), ("second-high", 5), ("third-low", 1)]
    ids = [small.client.submit_job(job_spec(n, code, priority=p, resources={"cpu": 1, "gpu": 2}))
           ["id"] for n, p in names]
    waiting = wait_for(lambda: (j := small.client.get_job(ids[1]))["reason_code"] and j,
                       message="a reason")
    assert waiting["state"] == "PENDING"
    small.client.cancel_job(blocker["id"])
    for job_id in ids:
        assert small.client.wait_job(job_id, timeout=30)["state"] == "SUCCEEDED"
    assert order_file.read_text().split() == ["second-high", "first-low", "third-low"]
