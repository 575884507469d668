"""Surviving a crash: SIGKILL the server mid-job, start it again, lose nothing."""

from __future__ import annotations

import time
from pathlib import Path

from aip.testing.server import AipServer, job_spec, wait_for


def test_sigkill_mid_job_then_restart_keeps_every_job_and_its_state(fresh_home: Path) -> None:
    marker = fresh_home / "release"
    wait_code = (f"import pathlib, time\nprint('waiting', flush=True)\n"
                 f"while not pathlib.Path({str(marker)!r}).exists(): time.sleep(0.05)\n"
                 "print('released', flush=True)")
    server = AipServer(fresh_home, nodes=[{"name": "solo", "cpu": 2, "memory": "4Gi"}]).start()
    try:
        client = server.client
        survivor = client.submit_job(job_spec("survivor", wait_code, resources={"cpu": 1}))
        finisher = client.submit_job(job_spec(
            "finisher", "import time; time.sleep(1.0); raise SystemExit(4)", resources={"cpu": 1}))
        queued = client.submit_job(job_spec("queued", "print('my turn')", resources={"cpu": 2}))
        wait_for(lambda: "waiting" in client.job_logs(survivor["id"]), message="survivor runs")
        wait_for(lambda: client.get_job(finisher["id"])["state"] == "RUNNING", message="running")
        pid = client.get_job(survivor["id"])["replicas"][0]["pid"]

        server.kill()  # the replicas keep running in their own sessions
        time.sleep(1.5)  # the finisher exits while no control plane watches
        server.start()
        client = server.client

        assert client.get_job(survivor["id"])["state"] == "RUNNING"
        assert client.get_job(survivor["id"])["replicas"][0]["pid"] == pid
        assert client.get_job(queued["id"])["state"] == "PENDING"
        failed = client.wait_job(finisher["id"], timeout=15)
        assert failed["state"] == "FAILED" and failed["exit_code"] == 4  # from the exit file
        marker.touch()
        done = client.wait_job(survivor["id"], timeout=15)
        assert done["state"] == "SUCCEEDED"
        assert client.job_logs(survivor["id"]) == "waiting\nreleased\n"
        assert client.wait_job(queued["id"], timeout=15)["state"] == "SUCCEEDED"
        assert {j["id"] for j in client.list_jobs(limit=10)["items"]} == {
            survivor["id"], finisher["id"], queued["id"]}
    finally:
        server.stop()
