"""Console benchmark: the jobs page's server time with 10,000 jobs in the store.

    python bench/console.py                  # 10,000 jobs, 50 requests per measurement
    python bench/console.py --jobs 50000 --requests 100 --output json

A fresh store (real SQLite under a temporary AIP_HOME) is filled through the store's service
layer (``job_service.submit``, as the API does), the jobs are moved to final states so the
scheduler leaves them alone, then a real ``aip up`` serves them on loopback. Each measurement
is N requests with the session cookie, timed at the client (loopback: the server's time plus
well under a millisecond). The named peer, measured side by side in the same run with the
requests interleaved, is the REST API's own listing of the same page: ``GET /api/v1/jobs``
with the Bearer token. Target: the jobs page under 200 ms (median).
"""

from __future__ import annotations

import argparse
import json
import platform as host
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import case, update

from aip.config import Settings
from aip.control import jobs as job_service
from aip.control import queues as queue_service
from aip.control.platform import PlatformConfig
from aip.inventory.config import build_nodes
from aip.spec import JobSpec, QueueSpec
from aip.store.db import make_engine, migrate, session_factory
from aip.store.tables import JobRow
from aip.testing.server import AipServer
from control_plane import _percentiles

TARGET_MS = 200.0
USERS = ("alice", "bob", "carol", "dave")
QUEUES = ("default", "team-a", "team-b")
NODES = [{"name": "bench", "cpu": 8, "memory": "32Gi",
          "gpus": {"count": 4, "model": "T4", "memory": "16Gi"}}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--output", choices=["table", "json"], default="table")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        server = AipServer(Path(home), nodes=NODES)  # writes config.yaml; started below
        started = time.perf_counter()
        fill_store(Path(home), args.jobs)
        fill_seconds = time.perf_counter() - started
        with server:
            results = measure(server, args.requests)
    results["jobs"] = args.jobs
    results["fill_seconds"] = round(fill_seconds, 1)
    results["machine"] = f"{host.machine()}, {host.system()}, Python {host.python_version()}"
    report(results, args.output)


def fill_store(home: Path, count: int) -> None:
    """``count`` jobs through ``job_service.submit``, then final states (so none runs)."""
    settings = Settings(home=home)
    config = PlatformConfig.load(settings.config_path)
    nodes = build_nodes(config.inventory())
    engine = make_engine(settings.effective_database_url())
    migrate(engine)
    sessions = session_factory(engine)
    now = time.time() - count
    with sessions.begin() as session:
        for name in QUEUES:
            queue_service.create(session, QueueSpec(name=name), now)
        for i in range(count):
            spec = JobSpec.model_validate({
                "name": f"train-{i % 97}", "queue": QUEUES[i % len(QUEUES)],
                "labels": {"user": USERS[i % len(USERS)]},
                "replicas": {"worker": {"count": 1 + i % 4, "command": ["python", "train.py"],
                                        "resources": {"cpu": 1, "gpu": 0.5 if i % 3 else 1}}}})
            job_service.submit(session, spec, nodes, now + i)
        finished = case((JobRow.seq % 10 == 0, "FAILED"), (JobRow.seq % 7 == 0, "CANCELLED"),
                        else_="SUCCEEDED")
        session.execute(update(JobRow).values(
            state=finished, reason=None, finished_at=JobRow.created_at + 60, attempt=1))
    engine.dispose()


def measure(server: AipServer, requests: int) -> dict[str, Any]:
    cases = {
        "jobs page (newest 50)": "/jobs",
        "jobs page, filtered (state+user+text)": "/jobs?state=FAILED&user=alice&text=train-1",
        "jobs page, deep (page 150)": "/jobs?page=150",
    }
    peers = {
        "jobs page (newest 50)": "/api/v1/jobs?limit=50",
        "jobs page, filtered (state+user+text)":
            "/api/v1/jobs?state=FAILED&label=user=alice&name=train-1&limit=50",
        "jobs page, deep (page 150)": "/api/v1/jobs?limit=50&offset=7450",
    }
    out: dict[str, Any] = {"cases": {}}
    with httpx.Client(base_url=server.url, timeout=30, headers={"Origin": server.url}) as page, \
            httpx.Client(base_url=server.url, timeout=30, headers={
                "Authorization": f"Bearer {server.token}"}) as api:
        signed = page.post("/login", data={"token": server.token}, follow_redirects=False)
        assert signed.status_code == 303, signed.text
        for name, path in cases.items():
            page_seconds, api_seconds = [], []
            for _ in range(3):  # warm both paths (templates, statement caches)
                _get(page, path, html=True)
                _get(api, peers[name], html=False)
            for _ in range(requests):  # interleaved: the same noise hits both
                page_seconds.append(_get(page, path, html=True))
                api_seconds.append(_get(api, peers[name], html=False))
            page_ms, api_ms = _percentiles(page_seconds), _percentiles(api_seconds)
            out["cases"][name] = {
                "path": path, "peer": peers[name],
                "page_median_ms": round(page_ms["p50_ms"], 1),
                "page_p99_ms": round(page_ms["p99_ms"], 1),
                "api_median_ms": round(api_ms["p50_ms"], 1),
                "api_p99_ms": round(api_ms["p99_ms"], 1),
                "ratio_page_to_api": round(page_ms["p50_ms"] / api_ms["p50_ms"], 2)}
    return out


def _get(client: httpx.Client, path: str, html: bool) -> float:
    started = time.perf_counter()
    answer = client.get(path, headers={"Accept": "text/html"} if html else None)
    elapsed = time.perf_counter() - started
    if answer.status_code != 200:
        raise SystemExit(f"GET {path}: {answer.status_code} {answer.text[:300]}")
    return elapsed


def report(results: dict[str, Any], output: str) -> None:
    if output == "json":
        print(json.dumps(results, indent=2))
        return
    print(f"{results['jobs']} jobs in the store (filled in {results['fill_seconds']} s); "
          f"{results['machine']}")
    print(f"{'case':40} {'page p50':>9} {'page p99':>9} {'API p50':>8} {'API p99':>8} "
          f"{'page/API':>8}")
    for name, row in results["cases"].items():
        verdict = "ok" if row["page_median_ms"] < TARGET_MS else f"over {TARGET_MS:g} ms"
        print(f"{name:40} {row['page_median_ms']:>7.1f}ms {row['page_p99_ms']:>7.1f}ms "
              f"{row['api_median_ms']:>6.1f}ms {row['api_p99_ms']:>6.1f}ms "
              f"{row['ratio_page_to_api']:>7.2f}x  {verdict}")


if __name__ == "__main__":
    main()
