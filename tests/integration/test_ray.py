"""``aip up --backend ray`` against a real 2-node Ray cluster started by the test.

Node A (the head) declares 4 "tpu" and names itself node-a; node B names nothing (so AIP calls
it ray-<id>). Each has 4 CPUs and its own RDMA domain label. The replicas are real processes
started by AIP's supervisor actors on those nodes; the last test stops node B under a running
gang.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aip.testing.server import AipServer, job_spec, wait_for

pytest.importorskip("ray")
pytestmark = [pytest.mark.integration]

MiB = 2**20
NODE_ARGS: dict[str, Any] = {"num_cpus": 4, "memory": 2048 * MiB,
                             "object_store_memory": 80 * MiB, "include_dashboard": False}
REPORT = ("import json, os; print(json.dumps({k: os.environ.get(k) for k in "
          "('AIP_NODE', 'AIP_RAY_NODE_ID', 'AIP_ROLE', 'AIP_REPLICA_INDEX', "
          "'AIP_ACCELERATOR_TPU_IDS')}), flush=True)")
# Two replicas of 2.5 CPUs cannot share a 4-CPU node: the gang spans both.
SPREAD = {"cpu": 2.5, "memory": "64Mi"}
SLEEP_IN_FIRST_ATTEMPT = ("import os, time; print('pid', os.getpid(), flush=True);"
                          "time.sleep(120 if os.environ['AIP_ATTEMPT'] == '1' else 0)")


class RayTestCluster:
    def __init__(self) -> None:
        from ray.cluster_utils import Cluster

        self.cluster = Cluster(initialize_head=True, head_node_args={
            **NODE_ARGS, "resources": {"tpu": 4},
            "labels": {"aip.io/node-name": "node-a", "aip.io/rdma-domain": "pod-a"}})
        self.worker = self.cluster.add_node(**NODE_ARGS,
                                            labels={"aip.io/rdma-domain": "pod-b"})
        self.worker_id = self.worker.node_id

    @property
    def address(self) -> str:
        return str(self.cluster.address)

    def stop_worker(self) -> None:
        """``ray stop`` on node B: its raylet and workers end, the GCS marks it dead."""
        self.cluster.remove_node(self.worker, allow_graceful=True)

    def add_worker(self, name: str) -> None:
        """A node joining the running cluster."""
        self.cluster.add_node(**NODE_ARGS, labels={"aip.io/node-name": name,
                                                   "aip.io/rdma-domain": "pod-c"})

    def shutdown(self) -> None:
        """Stop every Ray process of the cluster and remove its session's files."""
        session = self.cluster.head_node.get_session_dir_path()
        self.cluster.shutdown()
        shutil.rmtree(session, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayTestCluster]:
    cluster = RayTestCluster()
    try:
        yield cluster
    finally:
        cluster.shutdown()
        shutil.rmtree(Path("/tmp") / f"aip-{os.getuid()}" / "replicas", ignore_errors=True)


@pytest.fixture(scope="module")
def server(ray_cluster: RayTestCluster,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[AipServer]:
    # A 5 s grace: a SIGTERM carried by a busy Ray still lands before the SIGKILL, so the
    # replicas' reasons below name SIGTERM.
    with AipServer(tmp_path_factory.mktemp("aip-home"), backend="ray",
                   ray_address=ray_cluster.address, server={"stop_grace_period": 5}) as running:
        yield running


def nodes_by_name(server: AipServer) -> dict[str, dict[str, Any]]:
    return {node["name"]: node for node in server.client.list_nodes()}


def reports(server: AipServer, job_id: str) -> dict[str, dict[str, Any]]:
    """The JSON line each replica printed, by replica name ("worker-0")."""
    found = {}
    for line in server.client.job_logs(job_id).splitlines():
        name, _, text = line.partition("] ")
        if text.startswith("{"):
            found[name.lstrip("[")] = json.loads(text)
    return found


def test_the_nodes_come_from_the_ray_cluster(server: AipServer,
                                             ray_cluster: RayTestCluster) -> None:
    nodes = nodes_by_name(server)
    worker_name = f"ray-{ray_cluster.worker_id[:8]}"
    assert set(nodes) == {"node-a", worker_name}
    node_a, node_b = nodes["node-a"], nodes[worker_name]
    assert node_a["accelerators"] == {"tpu": 4} and node_b["accelerators"] == {}
    assert node_a["cpu"] == node_b["cpu"] == 4
    assert node_a["memory"] == 2048 * MiB
    assert node_a["labels"]["aip.io/rdma-domain"] == "pod-a"
    assert node_b["labels"]["aip.io/rdma-domain"] == "pod-b"
    assert node_b["labels"]["aip.dev/ray-node-id"] == ray_cluster.worker_id
    assert not any(key.startswith("ray.io/") for key in node_a["labels"])
    listed = server.cli("node", "list", "--output", "json")
    assert listed.returncode == 0, listed.stderr
    assert {item["name"] for item in json.loads(listed.stdout)["items"]} == set(nodes)


def test_a_gang_runs_on_the_nodes_aip_placed_it_on(server: AipServer) -> None:
    job = server.client.submit_job(job_spec("gang", REPORT, count=2, resources=SPREAD))
    done = server.client.wait_job(job["id"], timeout=60)
    assert done["state"] == "SUCCEEDED", done
    nodes = nodes_by_name(server)
    placed = {f"{r['role']}-{r['index']}": r["node"] for r in done["replicas"]}
    assert set(placed.values()) == set(nodes)  # one replica per node
    for name, report in reports(server, job["id"]).items():
        assert report["AIP_NODE"] == placed[name]
        # Ray's own word for where the replica ran: the node id seen by its supervisor.
        assert report["AIP_RAY_NODE_ID"] == nodes[placed[name]]["labels"]["aip.dev/ray-node-id"]


def test_a_job_needing_a_tpu_lands_on_the_node_that_has_it(server: AipServer) -> None:
    job = server.client.submit_job(job_spec(
        "tpu", REPORT, resources={"cpu": 0.5, "memory": "64Mi", "accelerators": {"tpu": 2}}))
    done = server.client.wait_job(job["id"], timeout=60)
    assert done["state"] == "SUCCEEDED", done
    assert done["replicas"][0]["node"] == "node-a"
    report = json.loads(server.client.job_logs(job["id"]))
    assert report["AIP_RAY_NODE_ID"] == nodes_by_name(server)["node-a"]["labels"][
        "aip.dev/ray-node-id"]
    assert report["AIP_ACCELERATOR_TPU_IDS"] in {"0,1", "1,2", "2,3", "0,2", "0,3", "1,3"}


def test_logs_stream_while_the_replica_runs_and_keep_its_last_line(server: AipServer) -> None:
    code = ("import sys, time\nfor i in range(6):\n    print('line', i, flush=True)\n"
            "    time.sleep(0.4)\nprint('last words', end='')\nsys.exit(3)")
    job = server.client.submit_job(job_spec("chatty", code))
    seen_running = []
    for line in server.client.follow_logs(job["id"]):
        if line.startswith("line"):
            seen_running.append(server.client.get_job(job["id"])["state"])
        if line.startswith("last words"):
            break
    assert seen_running[0] == "RUNNING"  # the first line arrived while the replica ran
    done = server.client.wait_job(job["id"], timeout=30)
    assert done["state"] == "FAILED" and "exited with code 3" in done["reason"]
    assert server.client.job_logs(job["id"]) == "".join(
        f"line {i}\n" for i in range(6)) + "last words"


def test_cancel_stops_the_replica_on_its_node(server: AipServer) -> None:
    code = ("import os, time; print('pid', os.getpid(), flush=True); time.sleep(120)")
    job = server.client.submit_job(job_spec("sleeper", code))
    logs = wait_for(lambda: server.client.job_logs(job["id"]), timeout=30,
                    message="the replica's first line")
    pid = int(logs.split()[1])
    server.client.cancel_job(job["id"])
    done = server.client.wait_job(job["id"], timeout=30)
    assert done["state"] == "CANCELLED"
    assert done["replicas"][0]["reason"] == "killed by signal 15 (SIGTERM)"
    assert not _alive(pid)


def test_a_timeout_stops_the_replica_and_fails_the_job(server: AipServer) -> None:
    job = server.client.submit_job(job_spec("slow", "import time; time.sleep(60)", timeout=1))
    done = server.client.wait_job(job["id"], timeout=30)
    assert done["state"] == "FAILED" and done["reason"].startswith("timed out after 1s")
    stopped = wait_for(lambda: [r for r in server.client.get_job(job["id"])["replicas"]
                                if r["state"] != "RUNNING"], timeout=15,
                       message="the timed-out replica to stop")
    assert stopped[0]["reason"] == "killed by signal 15 (SIGTERM)"


def test_a_restarted_control_plane_adopts_the_running_replicas(server: AipServer) -> None:
    code = ("import time\nfor i in range(8):\n    print('tick', i, flush=True)\n"
            "    time.sleep(0.5)")
    job = server.client.submit_job(job_spec("survivor", code))
    wait_for(lambda: "tick 1" in server.client.job_logs(job["id"]), timeout=30,
             message="the replica's first ticks")
    server.kill()  # the replicas run on under their node agents
    server.start()
    done = server.client.wait_job(job["id"], timeout=30)
    assert done["state"] == "SUCCEEDED", done
    # Output written while no control plane ran is fetched later, not lost (nor repeated).
    assert server.client.job_logs(job["id"]) == "".join(f"tick {i}\n" for i in range(8))


def test_stopping_a_node_fails_or_restarts_its_jobs_by_their_policy(
        server: AipServer, ray_cluster: RayTestCluster) -> None:
    """Two gangs span both nodes when node B stops: one without restarts fails, naming the
    node; one with a restart left runs its second attempt on node A and succeeds."""
    doomed = server.client.submit_job(job_spec("doomed", SLEEP_IN_FIRST_ATTEMPT, count=2,
                                               resources=SPREAD))
    wait_for(lambda: server.client.job_logs(doomed["id"]).count("pid") == 2, timeout=30,
             message="both replicas of doomed running")
    phoenix = server.client.submit_job(job_spec(
        "phoenix", SLEEP_IN_FIRST_ATTEMPT, count=2, max_restarts=1,
        resources={"cpu": 1.5, "memory": "64Mi"}))  # beside doomed: one replica per node
    wait_for(lambda: server.client.job_logs(phoenix["id"]).count("pid") == 2, timeout=30,
             message="both replicas of phoenix running")
    pids = [int(line.split()[-1]) for job in (doomed, phoenix)
            for line in server.client.job_logs(job["id"]).splitlines()]
    worker_name = f"ray-{ray_cluster.worker_id[:8]}"
    assert {r["node"] for r in server.client.get_job(phoenix["id"])["replicas"]} == {
        "node-a", worker_name}

    ray_cluster.stop_worker()

    failed = server.client.wait_job(doomed["id"], timeout=30)
    assert failed["state"] == "FAILED"
    assert f"node {worker_name} left the Ray cluster" in failed["reason"]
    assert [r["state"] for r in failed["replicas"] if r["node"] == worker_name] == ["LOST"]
    restarted = server.client.wait_job(phoenix["id"], timeout=30)
    assert restarted["state"] == "SUCCEEDED" and restarted["attempt"] == 2, restarted
    assert {r["node"] for r in restarted["replicas"]} == {"node-a"}
    retrying = [e["message"] for e in server.client.job_events(phoenix["id"])
                if e["type"] == "Retrying"]
    assert len(retrying) == 1 and f"node {worker_name} left the Ray cluster" in retrying[0]
    wait_for(lambda: worker_name not in nodes_by_name(server), timeout=10,
             message="the stopped node to leave the node list")
    # The replicas on the stopped node died with their supervisors; the others were stopped.
    wait_for(lambda: not any(_alive(pid) for pid in pids), timeout=10,
             message="every replica process of the first attempts gone")

    ray_cluster.add_worker("node-c")  # and a node that joins appears, with its labels
    joined = wait_for(lambda: nodes_by_name(server).get("node-c"), timeout=30,
                      message="the new node in the node list")
    assert joined["labels"]["aip.io/rdma-domain"] == "pod-c"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except OSError:
        return False

