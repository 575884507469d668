"""Gang launch benchmark: from submitting a 4-replica gang to all four processes running.

    python bench/launch.py          # AIP local, AIP on Ray, Ray Jobs (needs ray[default])
    python bench/launch.py --repeats 10 --output json

Three ways to start the same four processes (each prints ``time.time()`` first, then sleeps
a second), every one timed from just before the submission to the latest of the four first
lines:

- **AIP, local backend**: ``aip up`` with one declared node; the replicas are processes here.
- **AIP, Ray backend**: ``aip up --backend ray`` on a 2-node Ray cluster started on this host
  (``ray.cluster_utils``); AIP places the gang and each replica is started by the agent actor of
  the chosen node.
- **Ray Jobs**: ``JobSubmissionClient.submit_job`` on the same cluster, two ways: the
  entrypoint is a Ray driver that runs the command in four Ray tasks spread over the nodes
  (a gang on the cluster, as a Ray user writes it), or a script that starts the four
  processes itself, where the entrypoint runs (one node only: Ray Jobs' floor).

Every number is a median over ``--repeats`` (this machine is shared and noisy); ratios compare
against AIP on Ray, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aip.testing.server import AipServer
from control_plane import _machine, _ray_client, _ray_wait

REPLICAS = 4
REPLICA_CODE = "import time; print(repr(time.time()), flush=True); time.sleep(1)"
MiB = 2**20
RAY_NODE: dict[str, Any] = {"num_cpus": 4, "memory": 4096 * MiB, "object_store_memory": 80 * MiB}
# The Ray Jobs entrypoint: a driver that starts the replica command in four spread tasks and
# prints when each process wrote its first line.
RAY_JOBS_DRIVER = f"""
import json, subprocess, sys, ray
ray.init()
@ray.remote(num_cpus=0, scheduling_strategy="SPREAD")
def replica():
    process = subprocess.Popen([sys.executable, "-c", {REPLICA_CODE!r}], stdout=subprocess.PIPE,
                               text=True)
    first = process.stdout.readline()
    process.wait()
    return float(first)
print("STARTED", json.dumps(ray.get([replica.remote() for _ in range({REPLICAS})])))
"""
RAY_JOBS_PROCESSES = f"""
import json, subprocess, sys
processes = [subprocess.Popen([sys.executable, "-c", {REPLICA_CODE!r}], stdout=subprocess.PIPE,
                              text=True) for _ in range({REPLICAS})]
print("STARTED", json.dumps([float(process.stdout.readline()) for process in processes]))
for process in processes:
    process.wait()
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", choices=["table", "json"], default="table")
    args = parser.parse_args()

    results: dict[str, Any] = {"machine": _machine(), "replicas": REPLICAS,
                               "repeats": args.repeats}
    with tempfile.TemporaryDirectory() as home, AipServer(
            Path(home), nodes=[{"name": "bench", "cpu": 8, "memory": "8Gi"}]) as server:
        results["aip_local"] = bench_aip(server, args.repeats)
    cluster = start_ray_cluster()
    try:
        with tempfile.TemporaryDirectory() as home, AipServer(
                Path(home), backend="ray", ray_address=cluster.address) as server:
            results["aip_ray"] = bench_aip(server, args.repeats)
        dashboard = f"http://{cluster.webui_url}"
        results["ray_jobs"] = bench_ray_jobs(dashboard, RAY_JOBS_DRIVER, args.repeats)
        results["ray_jobs_processes"] = bench_ray_jobs(dashboard, RAY_JOBS_PROCESSES,
                                                       args.repeats)
    finally:
        session = cluster.head_node.get_session_dir_path()
        cluster.shutdown()
        shutil.rmtree(session, ignore_errors=True)
    report(results, args.output)


def bench_aip(server: AipServer, repeats: int) -> dict[str, Any]:
    """Submit the gang through the API; read each replica's first line from the job's logs."""
    spec = {"name": "gang", "replicas": {"worker": {
        "count": REPLICAS, "command": [sys.executable, "-c", REPLICA_CODE],
        "resources": {"cpu": 1, "memory": "64Mi"}}}}
    client = server.client
    samples = []
    for _ in range(repeats + 1):  # the first run warms up (imports, worker pools)
        before = time.time()
        job = client.submit_job(spec)
        done = client.wait_job(job["id"], timeout=120, poll=0.05)
        assert done["state"] == "SUCCEEDED", done
        started = [float(line.split("] ", 1)[1]) for line in
                   client.job_logs(job["id"]).splitlines()]
        assert len(started) == REPLICAS, started
        samples.append(max(started) - before)
    return _summary(samples[1:])


def bench_ray_jobs(dashboard_url: str, script: str, repeats: int) -> dict[str, Any]:
    import ray
    from ray.job_submission import JobStatus, JobSubmissionClient

    client = _ray_client(JobSubmissionClient, dashboard_url)
    samples = []
    for _ in range(repeats + 1):
        before = time.time()
        job_id = client.submit_job(
            entrypoint=f"{shlex.quote(sys.executable)} -c {shlex.quote(script)}")
        _ray_wait(client, job_id, JobStatus)
        status = client.get_job_status(job_id)
        logs = client.get_job_logs(job_id)
        assert status == JobStatus.SUCCEEDED, logs
        line = next(line for line in logs.splitlines() if line.startswith("STARTED "))
        samples.append(max(json.loads(line.split(" ", 1)[1])) - before)
    return {**_summary(samples[1:]), "version": ray.__version__}


def start_ray_cluster() -> Any:
    """Two Ray nodes on this host, the head with the dashboard Ray Jobs submits through."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={
        **RAY_NODE, "include_dashboard": True, "dashboard_host": "127.0.0.1",
        "labels": {"aip.io/node-name": "head"}})
    cluster.add_node(**RAY_NODE)
    return cluster


def _summary(samples: list[float]) -> dict[str, Any]:
    return {"median_s": statistics.median(samples), "min_s": min(samples),
            "max_s": max(samples), "samples": len(samples)}


def report(results: dict[str, Any], output: str) -> None:
    if output == "json":
        print(json.dumps(results, indent=2))
        return
    print(f"machine: {results['machine']}; Ray {results['ray_jobs']['version']}")
    print(f"submit -> all {results['replicas']} replicas of a gang running, median of "
          f"{results['repeats']} (after one warm-up run)")
    base = results["aip_ray"]["median_s"]
    rows = [("AIP, local backend", results["aip_local"]),
            ("AIP, Ray backend (2 Ray nodes)", results["aip_ray"]),
            ("Ray Jobs, 4 Ray tasks (spread)", results["ray_jobs"]),
            ("Ray Jobs, 4 processes (1 node)", results["ray_jobs_processes"])]
    print(f"{'':34} {'median':>8} {'min':>8} {'max':>8} {'/ AIP on Ray':>13}")
    for name, numbers in rows:
        print(f"{name:34} {numbers['median_s']:7.2f}s {numbers['min_s']:7.2f}s "
              f"{numbers['max_s']:7.2f}s {numbers['median_s'] / base:12.2f}x")


if __name__ == "__main__":
    main()
