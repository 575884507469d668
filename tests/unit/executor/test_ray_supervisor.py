"""The node side of the Ray backend, without Ray: ``NodeAgent`` and its ``ReplicaSupervisor``s
run real replica processes here and report their output and outcome as they would inside the
agent's actor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aip.executor import ray_supervisor
from aip.executor.ray_supervisor import NodeAgent, ReplicaSupervisor

PY = sys.executable
DEADLINE = 10.0


@pytest.fixture(autouse=True)
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This host plays a Ray node: its temp dir is the test's, its node id is fixed."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "node-tmp"))
    monkeypatch.setattr(ray_supervisor, "_ray_node_id", lambda: "node-x")
    (tmp_path / "node-tmp").mkdir()
    yield


def supervise(tmp_path: Path, code: str, *, env: dict[str, str] | None = None,
              command: list[str] | None = None) -> ReplicaSupervisor:
    return ReplicaSupervisor({
        "replica_id": "job1-worker-0-a1", "command": command or [PY, "-c", code],
        "env": env or {}, "working_dir": str(tmp_path / "work")}, linger=3600)


def collect(supervisor: ReplicaSupervisor, chunk: int = 7) -> tuple[dict[str, Any], bytes]:
    """Poll as the executor does (small chunks, to exercise the offsets) until the replica is
    finished and its output drained."""
    output, deadline = b"", time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        report = supervisor.report(len(output), chunk)
        output += report["output"]
        if report["final"] is not None and len(output) >= report["size"]:
            return report["final"], output
        if not report["output"]:
            time.sleep(0.02)
    raise AssertionError("the replica did not finish in time")


def wait_for_output(supervisor: ReplicaSupervisor, text: bytes) -> None:
    deadline = time.monotonic() + DEADLINE
    while text not in supervisor.report(0, 1 << 20)["output"]:
        assert time.monotonic() < deadline, f"no {text!r} in the output"
        time.sleep(0.02)


def test_the_output_is_read_in_pieces_and_the_last_line_is_not_lost(tmp_path: Path) -> None:
    code = "import sys\nfor i in range(5): print('line', i)\nprint('bye', end='')\nsys.exit(3)"
    final, output = collect(supervise(tmp_path, code))

    assert final["state"] == "exited" and final["exit_code"] == 3
    assert final["reason"] == "exited with code 3"
    assert output == b"".join(b"line %d\n" % i for i in range(5)) + b"bye"


def test_sigterm_reaches_the_replica_and_is_reported(tmp_path: Path) -> None:
    supervisor = supervise(tmp_path, "import time; print('up', flush=True); time.sleep(60)")
    wait_for_output(supervisor, b"up")
    supervisor.signal("SIGTERM")

    final, _ = collect(supervisor)
    assert final["exit_code"] == 143 and final["signal"] == "SIGTERM"
    assert final["reason"] == "killed by signal 15 (SIGTERM)"


def test_sigkill_stops_a_replica_that_ignores_sigterm(tmp_path: Path) -> None:
    code = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
            "print('up', flush=True); time.sleep(60)")
    supervisor = supervise(tmp_path, code)
    wait_for_output(supervisor, b"up")
    supervisor.signal("SIGTERM")
    supervisor.signal("SIGKILL")

    final, _ = collect(supervisor)
    assert final["exit_code"] == 137 and final["reason"] == "killed by signal 9 (SIGKILL)"
    supervisor.signal("SIGKILL")  # idempotent once it has ended


def test_a_missing_program_exits_127_and_says_why(tmp_path: Path) -> None:
    final, output = collect(supervise(tmp_path, "", command=["no-such-program-aip"]))
    assert final["exit_code"] == 127
    assert "cannot run 'no-such-program-aip'" in final["reason"]
    assert b"is it installed and on PATH?" in output


def test_the_replica_sees_its_own_environment_not_the_servers_or_rays(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIP_TOKEN", "secret")
    monkeypatch.setenv("RAY_RAYLET_PID", "1")
    code = ("import json, os; print(json.dumps({k: os.environ.get(k) for k in ('AIP_TOKEN', "
            "'RAY_RAYLET_PID', 'AIP_RAY_NODE_ID', 'AIP_ROLE', 'PYTHONUNBUFFERED')}));"
            "print(os.getcwd())")
    _, output = collect(supervise(tmp_path, code, env={"AIP_ROLE": "worker"}))
    seen, cwd = output.decode().splitlines()

    assert json.loads(seen) == {"AIP_TOKEN": None, "RAY_RAYLET_PID": None,
                                "AIP_RAY_NODE_ID": "node-x", "AIP_ROLE": "worker",
                                "PYTHONUNBUFFERED": "1"}
    assert cwd == str(tmp_path / "work")


def test_last_activity_follows_the_heartbeat_file(tmp_path: Path) -> None:
    heartbeat = tmp_path / "heartbeat"
    code = "import time; print('up', flush=True); time.sleep(60)"
    supervisor = supervise(tmp_path, code, env={"AIP_HEARTBEAT_FILE": str(heartbeat)})
    wait_for_output(supervisor, b"up")
    heartbeat.touch()
    os.utime(heartbeat, (time.time() + 100, time.time() + 100))

    assert supervisor.report(0, 1)["last_activity"] == pytest.approx(time.time() + 100, abs=5)
    supervisor.signal("SIGKILL")
    collect(supervisor)


def test_the_replica_dies_with_its_supervisor(tmp_path: Path) -> None:
    """A supervisor killed outright (its Ray worker crashed, its node is going down) takes
    the replica's whole process group with it: nothing runs on unsupervised."""
    pids = tmp_path / "pids"
    script = textwrap.dedent(f"""
        import tempfile, time
        from aip.executor import ray_supervisor
        ray_supervisor._ray_node_id = lambda: "node-x"
        code = ("import os, subprocess, sys, time;"
                "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
                "open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}');"
                "time.sleep(60)")
        ray_supervisor.ReplicaSupervisor({{"replica_id": "r1", "command": [{PY!r}, "-c", code],
                                          "env": {{}}, "working_dir": {str(tmp_path)!r}}})
        time.sleep(60)
    """)
    supervisor = subprocess.Popen([PY, "-c", script],
                                  env={**os.environ, "TMPDIR": str(tmp_path)})
    try:
        deadline = time.monotonic() + DEADLINE
        while not pids.exists() or len(pids.read_text().split()) < 2:
            assert time.monotonic() < deadline, "the replica did not start"
            time.sleep(0.05)
        replica_pids = [int(pid) for pid in pids.read_text().split()]
    finally:
        supervisor.send_signal(signal.SIGKILL)
        supervisor.wait()
    deadline = time.monotonic() + DEADLINE
    while any(_alive(pid) for pid in replica_pids):
        assert time.monotonic() < deadline, "the replica outlived its supervisor"
        time.sleep(0.05)


def test_the_agent_starts_a_replica_once_and_forgets_it_on_request(tmp_path: Path) -> None:
    agent = NodeAgent()
    launch = {"replica_id": "job1-worker-0-a1", "command": [PY, "-c", "print('once')"],
              "env": {}, "working_dir": str(tmp_path / "work")}
    agent.launch(launch)
    agent.launch(launch)  # a control plane that launches again starts nothing twice

    deadline = time.monotonic() + DEADLINE
    while (report := agent.report("job1-worker-0-a1", 0, 1 << 20))["final"] is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert report["output"] == b"once\n" and report["final"]["exit_code"] == 0
    directory = ray_supervisor.node_directory("job1-worker-0-a1")
    assert directory.exists()

    agent.forget("job1-worker-0-a1")
    assert not directory.exists()
    assert agent.report("job1-worker-0-a1", 0, 1) == {"unknown": True}


def test_a_replica_that_cannot_start_is_reported_lost_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    agent = NodeAgent()
    agent.launch({"replica_id": "r1", "command": [PY, "-c", "pass"], "env": {},
                  "working_dir": str(tmp_path / "file" / "work")})

    final = agent.report("r1", 0, 1)["final"]
    assert final["state"] == "lost"
    assert final["reason"].startswith("could not start on its node: [Errno 20] Not a directory")


def test_an_outcome_nobody_collects_is_forgotten_after_the_linger_time(tmp_path: Path) -> None:
    agent = NodeAgent(linger=0.1)
    agent.launch({"replica_id": "r1", "command": [PY, "-c", "pass"], "env": {},
                  "working_dir": str(tmp_path)})
    deadline = time.monotonic() + DEADLINE
    while agent.replica_ids():
        assert time.monotonic() < deadline, "the finished replica was never forgotten"
        time.sleep(0.05)
    assert not ray_supervisor.node_directory("r1").exists()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] not in "ZX"
    except OSError:
        return False
