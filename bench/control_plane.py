"""Control-plane benchmark: submissions/s through the API, one scheduling cycle over 10,000
pending jobs on 100 nodes, and launch latency (submit -> the user's process runs).

    python bench/control_plane.py                      # AIP alone, plus the plain-Python floor
    python bench/control_plane.py --peer ray   # and Ray Jobs side by side (needs ray[default])

Every number is a median over repeats (this machine is shared and noisy); ratios compare
against the named peer measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aip.testing.server import AipServer

PRINT_TIME = "import time; print(repr(time.time()), flush=True)"
TARGETS = {"submissions_per_s": 500, "cycle_s": 1.0, "launch_p50_ms": 150}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--pending", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--launches", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--peer", choices=["none", "ray"], default="none")
    parser.add_argument("--output", choices=["table", "json"], default="table")
    args = parser.parse_args()

    results: dict[str, Any] = {"machine": _machine()}
    results["cycle"] = bench_cycle(args.nodes, args.pending, args.repeats)
    with tempfile.TemporaryDirectory() as home, AipServer(
            Path(home), nodes=[{"name": "bench", "cpu": 2, "memory": "8Gi"}]) as server:
        results["launch"] = bench_launch(server, args.launches)
        results["store_cycle"] = bench_store_cycle(server, args.repeats)
        results["submit"] = bench_submit(server, args.submissions, args.concurrency)
        results["launch_backlog"] = bench_launch(server, args.launches)
        results["launch_backlog"]["pending"] = 2000 + args.repeats + args.submissions
    results["launch_floor"] = bench_popen_floor(args.launches)
    if args.peer == "ray":
        results["ray"] = bench_ray(min(args.submissions, 100), min(args.launches, 20))
    report(results, args.output)


def bench_cycle(num_nodes: int, num_pending: int, repeats: int) -> dict[str, float]:
    """The pure scheduler: one ``schedule()`` over a synthetic snapshot."""
    from aip.scheduler import schedule
    from aip.scheduler.bench import synthetic_snapshot

    snapshot = synthetic_snapshot(num_nodes=num_nodes, num_pending=num_pending, seed=0)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = schedule(snapshot)
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "admitted": len(result.admitted),
            "waiting": len(result.waiting), "nodes": num_nodes, "pending": num_pending}


def bench_store_cycle(server: AipServer, repeats: int) -> dict[str, float]:
    """A real reconcile pass with 2,000 jobs pending in the store: from submitting one more
    job to its pending reason being written (store -> snapshot -> schedule -> write)."""
    client = server.client
    client.create_queue({"name": "held", "quota": {"cpu": 0}})
    spec = {"name": "held", "queue": "held", "command": ["true"], "resources": {"cpu": 1}}
    for _ in range(2000):
        client.submit_job(spec)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        job = client.submit_job(spec)
        while not client.get_job(job["id"])["reason_code"]:
            time.sleep(0.002)
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "pending_in_store": 2000 + repeats}


def bench_submit(server: AipServer, count: int, concurrency: int) -> dict[str, float]:
    """``concurrency`` connections posting jobs as fast as the server takes them (an async
    load generator, so the client's own cost stays small beside the server's)."""
    import asyncio

    import httpx

    spec = {"name": "sub", "queue": "held", "command": ["true"], "resources": {"cpu": 1}}
    per_connection = count // concurrency

    async def run() -> float:
        headers = {"Authorization": f"Bearer {server.token}"}
        async with httpx.AsyncClient(base_url=server.url, headers=headers) as client:
            await client.get("/api/v1/health")

            async def connection() -> None:
                for _ in range(per_connection):
                    response = await client.post("/api/v1/jobs", json=spec)
                    response.raise_for_status()

            start = time.perf_counter()
            await asyncio.gather(*(connection() for _ in range(concurrency)))
            return time.perf_counter() - start

    elapsed = asyncio.run(run())
    return {"per_s": per_connection * concurrency / elapsed, "jobs": per_connection * concurrency,
            "concurrency": concurrency}


def bench_launch(server: AipServer, count: int) -> dict[str, float]:
    """Submit -> the user's command runs its first line, one job at a time."""
    client = server.client
    latencies = []
    spec = {"name": "launch", "command": [sys.executable, "-c", PRINT_TIME],
            "resources": {"cpu": 0.5, "memory": "64Mi"}}
    for _ in range(count):
        before = time.time()
        job = client.submit_job(spec)
        done = client.wait_job(job["id"], timeout=30, poll=0.05)
        assert done["state"] == "SUCCEEDED", done
        latencies.append(float(client.job_logs(job["id"]).strip()) - before)
    return _percentiles(latencies)


def bench_popen_floor(count: int) -> dict[str, float]:
    """The floor: the same command started directly with subprocess.Popen."""
    latencies = []
    for _ in range(count):
        before = time.time()
        out = subprocess.run([sys.executable, "-c", PRINT_TIME], capture_output=True,
                             text=True, check=True).stdout
        latencies.append(float(out.strip()) - before)
    return _percentiles(latencies)


def bench_ray(submissions: int, launches: int) -> dict[str, Any]:
    """Ray Jobs, the peer: submit through its job API, on a local Ray cluster."""
    import ray
    from ray.job_submission import JobStatus, JobSubmissionClient

    context = ray.init(num_cpus=2, include_dashboard=True, dashboard_host="127.0.0.1",
                       _node_ip_address="127.0.0.1", log_to_driver=False,
                       logging_level="ERROR")
    try:
        client = _ray_client(JobSubmissionClient, f"http://{context.dashboard_url}")
        start = time.perf_counter()
        ids = [client.submit_job(entrypoint="true") for _ in range(submissions)]
        submit_rate = submissions / (time.perf_counter() - start)
        for job_id in ids:
            _ray_wait(client, job_id, JobStatus)
        latencies = []
        for _ in range(launches):
            before = time.time()
            job_id = client.submit_job(entrypoint=f"{sys.executable} -c '{PRINT_TIME}'")
            _ray_wait(client, job_id, JobStatus)
            latencies.append(float(client.get_job_logs(job_id).strip().splitlines()[-1]) - before)
        return {"submit": {"per_s": submit_rate, "jobs": submissions},
                "launch": _percentiles(latencies), "version": ray.__version__}
    finally:
        ray.shutdown()


def _ray_client(factory: Any, address: str) -> Any:
    deadline = time.monotonic() + 60
    while True:
        try:
            return factory(address)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _ray_wait(client: Any, job_id: str, status: Any) -> None:
    while client.get_job_status(job_id) not in {status.SUCCEEDED, status.FAILED,
                                                 status.STOPPED}:
        time.sleep(0.02)


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50_ms": statistics.median(ordered) * 1000, "p99_ms": p99 * 1000,
            "samples": len(ordered)}


def _machine() -> str:
    import os
    import platform

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, " \
           f"Python {platform.python_version()}"


def report(results: dict[str, Any], output: str) -> None:
    if output == "json":
        print(json.dumps(results, indent=2))
        return
    cycle, store, submit = results["cycle"], results["store_cycle"], results["submit"]
    launch, floor = results["launch"], results["launch_floor"]
    print(f"machine: {results['machine']}")
    print(f"scheduling cycle, {cycle['pending']} pending on {cycle['nodes']} nodes: "
          f"{cycle['median_s'] * 1000:.0f} ms median ({cycle['admitted']} admitted) — "
          f"target < {TARGETS['cycle_s'] * 1000:.0f} ms")
    print(f"submit -> pending reason written, {store['pending_in_store']} jobs pending in the "
          f"store: {store['median_s'] * 1000:.0f} ms median")
    print(f"submissions through the API: {submit['per_s']:.0f}/s "
          f"({submit['jobs']} jobs, {submit['concurrency']} connections) — "
          f"target >= {TARGETS['submissions_per_s']}/s")
    print("launch latency submit -> process runs, idle control plane: "
          f"p50 {launch['p50_ms']:.0f} ms, p99 {launch['p99_ms']:.0f} ms — "
          f"target p50 < {TARGETS['launch_p50_ms']} ms")
    backlog = results["launch_backlog"]
    print(f"  with {backlog['pending']} other jobs pending: p50 {backlog['p50_ms']:.0f} ms, "
          f"p99 {backlog['p99_ms']:.0f} ms")
    print(f"  floor, subprocess.run of the same command: p50 {floor['p50_ms']:.0f} ms "
          f"(AIP/floor = {launch['p50_ms'] / floor['p50_ms']:.2f}x)")
    ray = results.get("ray")
    if ray:
        print(f"peer Ray Jobs {ray['version']}: submissions {ray['submit']['per_s']:.1f}/s "
              f"(AIP/Ray = {submit['per_s'] / ray['submit']['per_s']:.1f}x), launch p50 "
              f"{ray['launch']['p50_ms']:.0f} ms, p99 {ray['launch']['p99_ms']:.0f} ms "
              f"(Ray/AIP = {ray['launch']['p50_ms'] / launch['p50_ms']:.1f}x slower)")


if __name__ == "__main__":
    main()
