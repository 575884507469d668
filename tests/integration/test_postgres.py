"""The same control plane on PostgreSQL: jobs run, and survive a server crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from aip.testing.server import AipServer, job_spec

pytestmark = pytest.mark.postgres


def test_a_server_on_postgres_runs_jobs_and_keeps_them_across_a_crash(
        fresh_home: Path, postgres_url: str) -> None:
    server = AipServer(fresh_home, database_url=postgres_url,
                       nodes=[{"name": "pg", "cpu": 2, "memory": "4Gi"}]).start()
    try:
        done = server.client.wait_job(
            server.client.submit_job(job_spec("on-pg", "print('stored in postgres')"))["id"],
            timeout=30)
        assert done["state"] == "SUCCEEDED"
        server.client.create_queue({"name": "held", "quota": {"cpu": 0}})
        queued = server.client.submit_job(job_spec("later", "pass", queue="held"))
        server.kill()
        server.start()
        jobs = {j["name"]: j for j in server.client.list_jobs()["items"]}
        assert jobs["on-pg"]["state"] == "SUCCEEDED"
        assert jobs["later"]["id"] == queued["id"] and jobs["later"]["state"] == "PENDING"
        assert server.client.get_queue("held")["pending"] == 1
        assert server.client.job_logs(done["id"]) == "stored in postgres\n"
        assert not (fresh_home / "aip.db").exists()  # nothing went to SQLite
    finally:
        server.stop()
