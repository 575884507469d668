"""Jobs end to end against a real ``aip up``: real subprocess replicas on declared devices."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from aip.errors import Conflict, InvalidSpec
from aip.testing.server import AipServer, job_spec, wait_for

REPORT_ENV = (
    "import os, json; print(json.dumps({k: os.environ.get(k) for k in ("
    "'AIP_JOB_ID', 'AIP_ROLE', 'AIP_REPLICA_INDEX', 'AIP_NUM_REPLICAS', 'CUDA_VISIBLE_DEVICES',"
    " 'AIP_GPU_SHARE', 'AIP_ACCELERATOR_TPU_IDS', 'AIP_OUTPUT_DIR')}))")


def test_a_successful_job_runs_to_succeeded_with_its_output_logged(server: AipServer) -> None:
    job = server.client.submit_job(job_spec("hello", "print('hello from a replica')"))
    assert job["state"] == "PENDING"
    done = server.client.wait_job(job["id"], timeout=30)
    assert done["state"] == "SUCCEEDED", done
    assert done["exit_code"] == 0
    assert server.client.job_logs(job["id"]) == "hello from a replica\n"
    types = [e["type"] for e in server.client.job_events(job["id"])]
    assert types[:1] == ["Submitted"] and "Started" in types and types[-1] == "Succeeded"


def test_a_failing_job_is_retried_with_backoff_then_fails(server: AipServer) -> None:
    code = "import os, sys; print('attempt', os.environ['AIP_ATTEMPT']); sys.exit(3)"
    job = server.client.submit_job(job_spec("flaky", code, max_retries=2))
    done = server.client.wait_job(job["id"], timeout=30)
    assert done["state"] == "FAILED"
    assert done["attempt"] == 3 and done["exit_code"] == 3
    assert "exited with code 3" in done["reason"] and "after 2 restarts" in done["reason"]
    assert "max_restarts 2 exceeded" in done["reason"]
    logs = server.client.job_logs(job["id"])
    assert [line for line in logs.splitlines() if line.startswith("attempt")] == [
        "attempt 1", "attempt 2", "attempt 3"]
    assert [e["type"] for e in server.client.job_events(job["id"])].count("Retrying") == 2


def test_a_job_that_recovers_on_retry_succeeds(server: AipServer) -> None:
    code = ("import os, sys, pathlib; p = pathlib.Path(os.environ['AIP_CHECKPOINT_DIR'], 'x');"
            "first = not p.exists(); p.touch(); sys.exit(1 if first else 0)")
    job = server.client.submit_job(job_spec("recovers", code, max_retries=1))
    done = server.client.wait_job(job["id"], timeout=30)
    assert done["state"] == "SUCCEEDED" and done["attempt"] == 2


def test_cancel_stops_a_running_job_and_its_children(server: AipServer) -> None:
    code = ("import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
            "'import time; time.sleep(60)']); print('started', flush=True); time.sleep(60)")
    job = server.client.submit_job(job_spec("sleeper", code))
    wait_for(lambda: "started" in server.client.job_logs(job["id"]), message="replica start")
    pid = server.client.get_job(job["id"])["replicas"][0]["pid"]
    server.client.cancel_job(job["id"])
    done = server.client.wait_job(job["id"], timeout=15)
    assert done["state"] == "CANCELLED"
    assert done["replicas"][0]["state"] == "EXITED"
    import psutil
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    with pytest.raises(Conflict, match="already CANCELLED"):
        server.client.cancel_job(job["id"])


def test_a_job_that_ignores_sigterm_is_killed_after_the_grace_period(server: AipServer) -> None:
    code = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
            "print('stubborn', flush=True); time.sleep(60)")
    job = server.client.submit_job(job_spec("stubborn", code))
    wait_for(lambda: "stubborn" in server.client.job_logs(job["id"]), message="replica start")
    server.client.cancel_job(job["id"])
    done = server.client.wait_job(job["id"], timeout=15)
    assert done["state"] == "CANCELLED"
    assert "Killed" in [e["type"] for e in server.client.job_events(job["id"])]


def test_timeout_fails_the_job_and_stops_it(server: AipServer) -> None:
    job = server.client.submit_job(job_spec("slow", "import time; time.sleep(60)", timeout=1))
    started = time.monotonic()
    done = server.client.wait_job(job["id"], timeout=20)
    assert done["state"] == "FAILED"
    assert done["reason"].startswith("timed out after 1s")
    assert time.monotonic() - started < 10


def test_logs_follow_streams_lines_as_they_are_written(server: AipServer) -> None:
    code = "import time\nfor i in range(5):\n    print('line', i, flush=True); time.sleep(0.2)"
    job = server.client.submit_job(job_spec("streamer", code))
    arrivals = []
    for line in server.client.follow_logs(job["id"]):
        arrivals.append((time.monotonic(), line.rstrip("\n")))
    assert [text for _, text in arrivals] == [f"line {i}" for i in range(5)]
    assert arrivals[-1][0] - arrivals[0][0] > 0.4  # they came as written, not all at the end
    result = server.cli("job", "logs", job["id"], "-f")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"line {i}" for i in range(5)]


def test_two_replicas_see_distinct_indices_and_disjoint_gpus(server: AipServer) -> None:
    job = server.client.submit_job(job_spec(
        "pair", REPORT_ENV, count=2, resources={"cpu": 1, "gpu": 2, "gpu_type": ["T4"]}))
    done = server.client.wait_job(job["id"], timeout=30)
    assert done["state"] == "SUCCEEDED", done
    seen = [json.loads(server.client.job_logs(job["id"], replica=f"worker-{i}"))
            for i in range(2)]
    assert [s["AIP_REPLICA_INDEX"] for s in seen] == ["0", "1"]
    assert all(s["AIP_NUM_REPLICAS"] == "2" and s["AIP_JOB_ID"] == job["id"] for s in seen)
    devices = [set(s["CUDA_VISIBLE_DEVICES"].split(",")) for s in seen]
    assert all(len(d) == 2 for d in devices) and not devices[0] & devices[1]
    assert [set(map(str, r["gpus"])) for r in done["replicas"]] == devices


def test_two_quarter_gpu_replicas_share_one_gpu(server: AipServer, tmp_path: Path) -> None:
    release = tmp_path / "release"  # the replicas hold their share until the checks are done
    hold = (f"import os, time\nfor _ in range(600):\n"
            f"    if os.path.exists({str(release)!r}): break\n    time.sleep(0.05)")
    job = server.client.submit_job(job_spec(
        "shared", REPORT_ENV + "\n" + hold, count=2, resources={"cpu": 0.5, "gpu": 0.25}))
    running = wait_for(lambda: (j := server.client.get_job(job["id"]))["state"] == "RUNNING"
                       and j, message="RUNNING")
    gpus = [r["gpus"] for r in running["replicas"]]
    assert gpus[0] == gpus[1] and len(gpus[0]) == 1
    assert [r["gpu_share"] for r in running["replicas"]] == [0.25, 0.25]
    node = server.client.list_nodes()[0]
    allocated = {g["index"]: g["allocated_milli"] for g in node["gpus"]}
    assert allocated[gpus[0][0]] == 500
    release.touch()
    done = server.client.wait_job(job["id"], timeout=30)
    seen = [json.loads(server.client.job_logs(job["id"], replica=f"worker-{i}").splitlines()[0])
            for i in range(2)]
    assert {s["AIP_GPU_SHARE"] for s in seen} == {"0.25"}
    assert done["state"] == "SUCCEEDED"


def test_accelerators_get_their_device_ids(server: AipServer) -> None:
    job = server.client.submit_job(job_spec(
        "tpu", REPORT_ENV, resources={"cpu": 0.5, "accelerators": {"tpu": 2}}))
    server.client.wait_job(job["id"], timeout=30)
    seen = json.loads(server.client.job_logs(job["id"]))
    assert len(seen["AIP_ACCELERATOR_TPU_IDS"].split(",")) == 2
    assert seen["CUDA_VISIBLE_DEVICES"] == ""


def test_quota_exhaustion_keeps_a_job_pending_with_the_reason(server: AipServer) -> None:
    server.client.create_queue({"name": "team-q", "quota": {"gpu": 1}})
    hold = "import time; time.sleep(30)"
    first = server.client.submit_job(job_spec(
        "holder", hold, queue="team-q", resources={"cpu": 0.5, "gpu": 1}))
    wait_for(lambda: server.client.get_job(first["id"])["state"] == "RUNNING", message="RUNNING")
    second = server.client.submit_job(job_spec(
        "waiter", hold, queue="team-q", resources={"cpu": 0.5, "gpu": 1}))
    waiting = wait_for(lambda: (j := server.client.get_job(second["id"]))["reason_code"] and j,
                       message="a pending reason")
    assert waiting["state"] == "PENDING"
    assert waiting["reason"].startswith("queue team-q: gpu quota 1/1 in use")
    queue = server.client.get_queue("team-q")
    assert queue["usage"]["gpu"] == 1 and queue["pending"] == 1 and queue["running"] == 1
    server.client.cancel_job(first["id"])
    wait_for(lambda: server.client.get_job(second["id"])["state"] == "RUNNING",
             message="the waiter to start once quota frees")
    server.client.cancel_job(second["id"])
    server.client.wait_job(second["id"], timeout=15)


def test_bad_inputs_get_clear_errors_and_leave_the_store_intact(server: AipServer) -> None:
    before = server.client.list_jobs(limit=1)["total"]
    with pytest.raises(InvalidSpec, match=r"started at line 3, column \d+"):
        server.client.submit_job_yaml("name: x\ncommand: [a]\nresources: {cpu: 1\n")
    with pytest.raises(InvalidSpec, match="did you mean 'resources'") as unknown:
        server.client.submit_job({"name": "x", "command": ["a"], "resorces": {}})
    assert "resorces" in unknown.value.fields
    with pytest.raises(InvalidSpec) as negative:
        server.client.submit_job({"name": "x", "command": ["a"],
                                  "resources": {"cpu": -1, "memory": 0}})
    assert set(negative.value.fields) == {"replicas.worker.resources.cpu",
                                         "replicas.worker.resources.memory"}
    with pytest.raises(Exception, match="largest node has 4") as impossible:
        server.client.submit_job(job_spec("huge", "pass", resources={"gpu": 8}))
    assert type(impossible.value).__name__ == "Unschedulable"
    assert server.client.list_jobs(limit=1)["total"] == before


def test_cli_run_submits_and_follows_a_job(server: AipServer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = server.cli("run", "--cpus", "0.5", "--follow", "--", sys.executable, "-c",
                        "print('via the cli')")
    assert result.returncode == 0, result.stderr
    assert "via the cli" in result.stdout
    listed = server.cli("job", "list", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    assert any(j["name"] == "python" or "via" in json.dumps(j["spec"])
               for j in json.loads(listed.stdout)["items"])
