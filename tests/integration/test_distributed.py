"""Distributed training end to end through a real ``aip up``: each framework's rendezvous
wired by the platform, ports that never collide, restarts that resume from the checkpoint,
hang detection. The training programs are the documented examples in examples/distributed/."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from aip.testing.server import AipServer, wait_for

REPO = Path(__file__).parents[2]
PROGRAMS = REPO / "examples" / "distributed"
CPU = {"cpu": 1, "memory": "1Gi"}


def example(name: str, **fields: Any) -> dict[str, Any]:
    """A documented example (examples/distributed/NAME), submitted from the repository root
    as `aip job submit -f examples/distributed/NAME --workdir .` does."""
    return {**yaml.safe_load((PROGRAMS / name).read_text()), "working_dir": str(REPO), **fields}


def gang(name: str, program: str, count: int = 2, **fields: Any) -> dict[str, Any]:
    role = fields.pop("role", "worker")
    resources = fields.pop("resources", CPU)
    env = fields.pop("replica_env", {})
    return {"name": name, "replicas": {role: {
        "count": count, "command": [sys.executable, str(PROGRAMS / program)],
        "resources": resources, "env": env}}, **fields}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Two declared nodes of 2 CPUs on this host, so a 2-replica gang can span them."""
    nodes = [{"name": "node-a", "cpu": 2, "memory": "8Gi"},
             {"name": "node-b", "cpu": 2, "memory": "8Gi"}]
    with AipServer(tmp_path_factory.mktemp("aip-home"), nodes=nodes) as running:
        yield running


def succeeded(server: AipServer, job: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
    done = server.client.wait_job(job["id"], timeout=timeout)
    assert done["state"] == "SUCCEEDED", (done, server.client.job_logs(job["id"])[-3000:])
    return done


def test_pytorch_ddp_ranks_end_with_identical_weights(cluster: AipServer) -> None:
    torch = pytest.importorskip("torch")
    job = cluster.client.submit_job(example("pytorch.yaml"))
    done = succeeded(cluster, job)
    out = Path(done["output_dir"])
    first, second = (torch.load(out / f"rank{rank}.pt") for rank in (0, 1))
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key
    ports = [r["ports"][0] for r in done["replicas"]]
    assert len(set(ports)) == 2 and all(20000 <= p <= 29999 for p in ports)


def test_pytorch_torchrun_runs_several_processes_per_replica(cluster: AipServer) -> None:
    torch = pytest.importorskip("torch")
    job = cluster.client.submit_job(example("pytorch-torchrun.yaml"))
    done = succeeded(cluster, job, timeout=180)
    out = Path(done["output_dir"])
    weights = [torch.load(out / f"rank{rank}.pt") for rank in range(4)]
    for other in weights[1:]:
        assert all(torch.equal(weights[0][k], other[k]) for k in weights[0])


def test_tensorflow_multi_worker_mirrored_strategy_trains(cluster: AipServer) -> None:
    pytest.importorskip("tensorflow")
    job = cluster.client.submit_job(example("tensorflow.yaml"))
    done = succeeded(cluster, job, timeout=180)
    out = Path(done["output_dir"])
    assert sorted(p.name for p in out.glob("done-*")) == ["done-0", "done-1"]


def test_jax_processes_complete_a_psum(cluster: AipServer) -> None:
    pytest.importorskip("jax")
    job = cluster.client.submit_job(example("jax.yaml"))
    done = succeeded(cluster, job)
    out = Path(done["output_dir"])
    assert [(out / f"psum-{i}.txt").read_text().strip() for i in (0, 1)] == ["1", "1"]


def test_two_jobs_on_one_node_get_different_ports(cluster: AipServer) -> None:
    code = "import os, time; print(os.environ['MASTER_PORT'], flush=True); time.sleep(3)"
    specs = [{"name": f"ports-{i}", "framework": "pytorch", "replicas": {"worker": {
        "count": 1, "command": [sys.executable, "-c", code],
        "resources": {"cpu": 0.5, "memory": "64Mi"}}}} for i in range(4)]
    jobs = [cluster.client.submit_job(spec) for spec in specs]
    done = [succeeded(cluster, job) for job in jobs]
    masters = [int(cluster.client.job_logs(job["id"]).split()[-1]) for job in done]
    assert len(set(masters)) == len(masters)


def _user_pids(server: AipServer, job_id: str, role_index: str) -> list[int]:
    """The user processes of a replica: the children of its wrapper."""
    replica = next(r for r in server.client.get_job(job_id)["replicas"]
                   if r["name"] == role_index)
    return [child.pid for child in psutil.Process(replica["pid"]).children(recursive=True)]


def _steps(out: Path, rank: int) -> list[int]:
    return [int(line) for line in (out / f"steps-rank{rank}.txt").read_text().split()]


def test_a_killed_replica_restarts_the_gang_which_resumes_from_its_checkpoint(
        cluster: AipServer) -> None:
    spec = example("resume.yaml")
    spec["replicas"]["worker"]["env"]["STEPS"] = "60"  # ~5 s left after step 8 for the kill
    job = cluster.client.submit_job(spec)
    wait_for(lambda: "step 8" in cluster.client.job_logs(job["id"], replica="worker-1"),
             timeout=60, message="eight steps of worker-1")
    for pid in _user_pids(cluster, job["id"], "worker-1"):
        os.kill(pid, signal.SIGKILL)
    done = succeeded(cluster, job)
    assert done["restarts"] == 1 and done["attempt"] == 2 and done["max_retries"] == 3
    steps = _steps(Path(done["output_dir"]), 1)
    assert steps.count(1) == 1 and steps[-1] == 60, steps  # continued, never started over
    assert "resuming after step" in cluster.client.job_logs(job["id"], replica="worker-1")
    assert any(e["type"] == "Retrying" and "restarting the gang" in e["message"]
               for e in cluster.client.job_events(job["id"]))


def test_restart_policy_replica_restarts_only_the_failed_replica(cluster: AipServer) -> None:
    job = cluster.client.submit_job(gang(
        "alone", "resume_counter.py", max_restarts=1, restart_policy="replica",
        replica_env={"STEPS": "60", "SLEEP": "0.1"}))
    wait_for(lambda: "step 8" in cluster.client.job_logs(job["id"], replica="worker-1"),
             timeout=60, message="eight steps of worker-1")
    survivor = cluster.client.get_job(job["id"])["replicas"][0]["pid"]
    for pid in _user_pids(cluster, job["id"], "worker-1"):
        os.kill(pid, signal.SIGKILL)
    done = succeeded(cluster, job)
    assert done["attempt"] == 1 and done["restarts"] == 1
    worker0, worker1 = done["replicas"]
    assert worker0["pid"] == survivor and worker0["restarts"] == 0
    assert worker1["restarts"] == 1
    steps = _steps(Path(done["output_dir"]), 0)
    assert steps == sorted(steps)  # the survivor never started over


def test_a_silent_replica_is_failed_as_hung(cluster: AipServer) -> None:
    code = "import time; print('working', flush=True); time.sleep(60)"
    job = cluster.client.submit_job({
        "name": "hangs", "hang_timeout": "2s", "replicas": {"worker": {
            "command": [sys.executable, "-c", code], "resources": {"cpu": 0.5}}}})
    done = cluster.client.wait_job(job["id"], timeout=30)
    assert done["state"] == "FAILED"
    assert "hung" in done["reason"] and "hang_timeout" in done["reason"]


def test_a_heartbeat_keeps_a_silent_replica_alive(cluster: AipServer) -> None:
    # hang_timeout counts from the launch; 5 s covers the interpreter start and `import aip`
    # on a busy machine, and the 8 s of silent work outlast it.
    code = ("import time, aip\nfor _ in range(16):\n    aip.heartbeat(); time.sleep(0.5)\n")
    job = cluster.client.submit_job({
        "name": "beats", "hang_timeout": "5s", "replicas": {"worker": {
            "command": [sys.executable, "-c", code], "resources": {"cpu": 0.5}}}})
    succeeded(cluster, job)


def test_aip_run_starts_a_distributed_job_without_yaml(cluster: AipServer) -> None:
    pytest.importorskip("torch")
    result = cluster.cli(
        "run", "--framework", "pytorch", "--replicas", "2", "--cpus", "1", "--name", "cli-ddp",
        "-o", "json", "--", "python", str(PROGRAMS / "ddp_train.py"))
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)
    done = succeeded(cluster, job)
    assert done["spec"]["framework"] == "pytorch"
    assert sorted(p.name for p in Path(done["output_dir"]).glob("rank*.pt")) == [
        "rank0.pt", "rank1.pt"]
