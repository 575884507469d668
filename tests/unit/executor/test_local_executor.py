"""LocalExecutor against real processes: exit codes, logs, environment, stopping whole
process groups, adoption by a new control plane, and the pid-reuse guard."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from aip.errors import Conflict
from aip.executor.base import Executor, LaunchRequest, ReplicaHandle, ReplicaStatus
from aip.executor.local import LocalExecutor, read_handle, read_started

PY = sys.executable
DEADLINE = 10.0


@pytest.fixture
def executor() -> Iterator[LocalExecutor]:
    executor = LocalExecutor()
    launched: list[ReplicaHandle] = []
    original_launch = executor.launch

    def tracking_launch(request: LaunchRequest) -> ReplicaHandle:
        handle = original_launch(request)
        launched.append(handle)
        return handle

    executor.launch = tracking_launch  # type: ignore[method-assign]
    yield executor
    for handle in launched:  # never leave a replica behind, whatever the test did
        executor.kill(handle)
        wait_until_finished(executor, handle)


def make_request(tmp_path: Path, command: list[str], *, name: str = "r0",
                 env: dict[str, str] | None = None) -> LaunchRequest:
    return LaunchRequest(
        replica_id=f"job1-worker-{name}-a1", job_id="job1", command=command, env=env or {},
        working_dir=str(tmp_path / "work"), log_path=str(tmp_path / "logs" / f"{name}.log"),
        status_dir=str(tmp_path / "status" / name))


def python(code: str) -> list[str]:
    return [PY, "-c", textwrap.dedent(code)]


def wait_until_finished(executor: Executor, handle: ReplicaHandle,
                        timeout: float = DEADLINE) -> ReplicaStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = executor.poll(handle)
        if status.state != "running" or time.monotonic() > deadline:
            return status
        time.sleep(0.01)


def wait_for_file(path: Path, timeout: float = DEADLINE) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text().strip():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)
    return path.read_text()


def process_gone(pid: int, timeout: float = DEADLINE) -> bool:
    """True once ``pid`` no longer runs (gone, or a zombie nobody has reaped yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.01)
    return False


def test_a_command_that_exits_3_is_reported_with_its_output_in_the_log(
        executor: LocalExecutor, tmp_path: Path) -> None:
    request = make_request(tmp_path, python("""
        import sys
        print("hello from the replica")
        print("to stderr", file=sys.stderr)
        sys.exit(3)
    """))

    handle = executor.launch(request)
    status = wait_until_finished(executor, handle)

    assert status == ReplicaStatus("exited", 3, "exited with code 3")
    assert status.finished_at is not None
    log = Path(request.log_path).read_text()
    assert "hello from the replica\n" in log
    assert "to stderr\n" in log
    assert executor.poll(handle) == status  # a finished replica stays finished


def test_a_reason_the_command_writes_to_its_reason_file_is_part_of_the_exit(
        executor: LocalExecutor, tmp_path: Path) -> None:
    request = make_request(tmp_path, python("""
        import os, sys
        with open(os.environ["AIP_REASON_FILE"], "w") as reason:
            reason.write("environment build failed: pip could not install 'x==9'\\nmore\\n")
        sys.exit(3)
    """))

    status = wait_until_finished(executor, executor.launch(request))

    assert status == ReplicaStatus(
        "exited", 3, "exited with code 3: environment build failed: pip could not install 'x==9'")
    exit_file = json.loads((Path(request.status_dir) / "exit.json").read_text())
    assert exit_file["reason"] == "environment build failed: pip could not install 'x==9'"


def test_a_reason_left_by_an_earlier_attempt_is_not_reported_again(
        executor: LocalExecutor, tmp_path: Path) -> None:
    request = make_request(tmp_path, python("import sys; sys.exit(1)"))
    Path(request.status_dir).mkdir(parents=True)
    (Path(request.status_dir) / "reason").write_text("stale\n")

    status = wait_until_finished(executor, executor.launch(request))

    assert status.reason == "exited with code 1"


def test_the_log_is_appended_to_not_truncated(executor: LocalExecutor, tmp_path: Path) -> None:
    request = make_request(tmp_path, python("print('second attempt')"))
    Path(request.log_path).parent.mkdir(parents=True)
    Path(request.log_path).write_text("first attempt\n")

    wait_until_finished(executor, executor.launch(request))

    assert Path(request.log_path).read_text() == "first attempt\nsecond attempt\n"


def test_the_command_sees_its_environment_and_working_dir_but_no_server_secrets(
        tmp_path: Path) -> None:
    base = {**os.environ, "AIP_TOKEN": "secret", "AIP_DATABASE_URL": "postgresql://u:p@h/db",
            "FROM_HOST": "kept"}
    executor = LocalExecutor(base_environ=base)
    request = make_request(tmp_path, python("""
        import json, os
        print(json.dumps({"env": dict(os.environ), "cwd": os.getcwd()}))
    """), env={"AIP_RANK": "3", "CUDA_VISIBLE_DEVICES": "1,2"})

    status = wait_until_finished(executor, executor.launch(request))

    assert status.exit_code == 0
    seen = json.loads(Path(request.log_path).read_text())
    assert seen["cwd"] == request.working_dir
    assert seen["env"]["AIP_RANK"] == "3"
    assert seen["env"]["CUDA_VISIBLE_DEVICES"] == "1,2"
    assert seen["env"]["FROM_HOST"] == "kept"
    assert seen["env"]["PYTHONUNBUFFERED"] == "1"
    assert "AIP_TOKEN" not in seen["env"]
    assert "AIP_DATABASE_URL" not in seen["env"]


def test_the_replica_environment_may_override_python_unbuffered(
        executor: LocalExecutor, tmp_path: Path) -> None:
    request = make_request(tmp_path, python("import os; print(os.environ['PYTHONUNBUFFERED'])"),
                           env={"PYTHONUNBUFFERED": "0"})

    wait_until_finished(executor, executor.launch(request))

    assert Path(request.log_path).read_text() == "0\n"


def test_terminate_stops_the_whole_process_group_including_grandchildren(
        executor: LocalExecutor, tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    request = make_request(tmp_path, python(f"""
        import subprocess, time
        grandchild = subprocess.Popen(["sleep", "60"])
        open({str(pid_file)!r}, "w").write(str(grandchild.pid))
        time.sleep(60)
    """))
    handle = executor.launch(request)
    grandchild = int(wait_for_file(pid_file))
    child = read_started(handle.status_dir)
    assert child is not None

    executor.terminate(handle)
    status = wait_until_finished(executor, handle)

    assert status == ReplicaStatus("exited", 143, "killed by signal 15 (SIGTERM)", "SIGTERM")
    assert process_gone(grandchild)
    assert process_gone(child["child_pid"])
    assert process_gone(handle.pid)
    assert "killed by signal 15 (SIGTERM)" in Path(request.log_path).read_text()


def test_terminate_delivers_sigterm_to_the_command_exactly_once(
        executor: LocalExecutor, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    request = make_request(tmp_path, python(f"""
        import signal, sys, time
        received = []
        signal.signal(signal.SIGTERM, lambda *_: received.append(1))
        open({str(ready)!r}, "w").write("ready")
        while not received:
            time.sleep(0.01)
        time.sleep(0.3)  # a duplicate would arrive by now
        sys.exit(len(received))
    """))
    handle = executor.launch(request)
    wait_for_file(ready)

    executor.terminate(handle)

    assert wait_until_finished(executor, handle).exit_code == 1


def test_kill_stops_a_command_that_ignores_sigterm(
        executor: LocalExecutor, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    request = make_request(tmp_path, python(f"""
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        open({str(ready)!r}, "w").write("ready")
        time.sleep(60)
    """))
    handle = executor.launch(request)
    wait_for_file(ready)

    executor.terminate(handle)
    time.sleep(0.2)
    assert executor.poll(handle).state == "running"
    executor.kill(handle)
    status = wait_until_finished(executor, handle)

    assert status == ReplicaStatus("exited", 137, "killed by signal 9 (SIGKILL)", "SIGKILL")
    executor.kill(handle)  # idempotent, and no error once gone
    executor.terminate(handle)
    assert executor.poll(handle) == status


@pytest.mark.parametrize("delay", [0.0, 0.002, 0.008, 0.03])
def test_terminate_right_after_launch_never_leaves_the_command_running(
        executor: LocalExecutor, tmp_path: Path, delay: float) -> None:
    """Whether SIGTERM beats the wrapper's start, its handlers, or the command's start, the
    outcome is the same: the replica ends by SIGTERM and nothing keeps running."""
    handle = executor.launch(make_request(tmp_path, ["sleep", "60"]))
    time.sleep(delay)

    executor.terminate(handle)
    status = wait_until_finished(executor, handle)

    assert (status.state, status.exit_code, status.signal) == ("exited", 143, "SIGTERM")
    started = read_started(handle.status_dir)
    if started is not None:
        assert process_gone(started["child_pid"])


@pytest.mark.parametrize(("program", "exit_code", "message"), [
    pytest.param("aip-no-such-command", 127,
                 "cannot run 'aip-no-such-command': No such file or directory",
                 id="not on PATH"),
    pytest.param("./not-executable.sh", 126, "cannot run './not-executable.sh': Permission denied",
                 id="not executable"),
])
def test_a_command_that_cannot_start_exits_with_the_shell_convention_and_says_why(
        executor: LocalExecutor, tmp_path: Path, program: str, exit_code: int,
        message: str) -> None:
    request = make_request(tmp_path, [program, "--flag"])
    Path(request.working_dir).mkdir(parents=True)
    (Path(request.working_dir) / "not-executable.sh").write_text("#!/bin/sh\necho hi\n")

    status = wait_until_finished(executor, executor.launch(request))

    assert (status.state, status.exit_code) == ("exited", exit_code)
    assert message in status.reason
    assert message in Path(request.log_path).read_text()


def test_a_new_executor_adopts_replicas_of_a_control_plane_that_was_killed(
        tmp_path: Path) -> None:
    """The control plane runs in its own process and is SIGKILLed after launching; the replica
    keeps running, and a fresh LocalExecutor polls it through the stored handle."""
    release = tmp_path / "release"
    request = make_request(tmp_path, python(f"""
        import os, sys, time
        while not os.path.exists({str(release)!r}):
            time.sleep(0.01)
        sys.exit(5)
    """))
    control_plane = subprocess.Popen([PY, "-c", textwrap.dedent("""
        import json, sys, time
        from aip.executor.base import LaunchRequest
        from aip.executor.local import LocalExecutor
        request = LaunchRequest(**json.loads(sys.argv[1]))
        print(json.dumps(LocalExecutor().launch(request).to_dict()), flush=True)
        time.sleep(60)
    """), json.dumps(request.__dict__)], stdout=subprocess.PIPE, text=True)
    try:
        assert control_plane.stdout is not None
        stored = control_plane.stdout.readline()
    finally:
        control_plane.kill()
        control_plane.wait()
    handle = ReplicaHandle.from_dict(json.loads(stored))
    adopter = LocalExecutor()

    try:
        assert adopter.poll(handle).state == "running"
        release.write_text("go")
        status = wait_until_finished(adopter, handle)
    finally:
        adopter.kill(handle)

    assert status == ReplicaStatus("exited", 5, "exited with code 5")
    assert read_handle(request.status_dir) == handle


def test_a_new_executor_can_stop_an_adopted_replica(
        executor: LocalExecutor, tmp_path: Path) -> None:
    handle = executor.launch(make_request(tmp_path, ["sleep", "60"]))
    adopter = LocalExecutor()
    assert adopter.poll(handle).state == "running"

    adopter.terminate(handle)

    assert wait_until_finished(adopter, handle).signal == "SIGTERM"
    assert wait_until_finished(executor, handle).signal == "SIGTERM"


def test_a_reused_pid_is_never_taken_for_the_replica(tmp_path: Path) -> None:
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        real_start = psutil.Process(stranger.pid).create_time()
        (tmp_path / "status").mkdir()
        handle = ReplicaHandle(replica_id="old-replica", pid=stranger.pid,
                               create_time=real_start - 100, status_dir=str(tmp_path / "status"))
        executor = LocalExecutor()

        status = executor.poll(handle)
        executor.terminate(handle)
        executor.kill(handle)

        assert status.state == "lost"
        assert "vanished" in status.reason
        time.sleep(0.05)
        assert stranger.poll() is None, "a process that merely reuses the pid was signalled"
    finally:
        stranger.kill()
        stranger.wait()


def test_a_stepped_wall_clock_does_not_lose_a_running_replica(
        executor: LocalExecutor, tmp_path: Path) -> None:
    """Create times are boot time + uptime, so they move when the clock is stepped; the
    wrapper is still recognised by its command line."""
    handle = executor.launch(make_request(tmp_path, ["sleep", "60"]))
    stepped = ReplicaHandle(handle.replica_id, handle.pid, handle.create_time + 5,
                            handle.status_dir)

    assert LocalExecutor().poll(stepped).state == "running"


def test_a_wrapper_killed_from_outside_is_lost_and_terminate_cleans_up_its_command(
        executor: LocalExecutor, tmp_path: Path) -> None:
    handle = executor.launch(make_request(tmp_path, ["sleep", "60"]))
    deadline = time.monotonic() + DEADLINE
    while (started := read_started(handle.status_dir)) is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)

    os.kill(handle.pid, signal.SIGKILL)  # e.g. the OOM killer; not through the executor
    status = wait_until_finished(executor, handle)
    executor.terminate(handle)

    assert status.state == "lost"
    assert status.reason == ("process vanished and left no exit status "
                             "(its supervisor was killed by signal 9 (SIGKILL))")
    assert process_gone(started["child_pid"])


def test_processes_left_behind_by_the_command_are_killed_when_it_exits(
        executor: LocalExecutor, tmp_path: Path) -> None:
    pid_file = tmp_path / "leftover.pid"
    request = make_request(tmp_path, python(f"""
        import subprocess
        leftover = subprocess.Popen(["sleep", "60"])
        open({str(pid_file)!r}, "w").write(str(leftover.pid))
    """))

    status = wait_until_finished(executor, executor.launch(request))

    assert status.exit_code == 0
    assert process_gone(int(pid_file.read_text()))


def test_launch_is_idempotent_per_status_dir(executor: LocalExecutor, tmp_path: Path) -> None:
    request = make_request(tmp_path, ["sleep", "60"])

    first = executor.launch(request)
    again = LocalExecutor().launch(request)  # e.g. a control plane that restarted mid-launch

    assert again == first
    other = LaunchRequest(**{**request.__dict__, "replica_id": "job1-worker-r0-a2"})
    with pytest.raises(Conflict, match="still running"):
        executor.launch(other)


def test_a_new_attempt_in_a_used_status_dir_starts_from_clean_status_files(
        executor: LocalExecutor, tmp_path: Path) -> None:
    first = make_request(tmp_path, python("import sys; sys.exit(1)"))
    wait_until_finished(executor, executor.launch(first))
    second = LaunchRequest(**{**first.__dict__, "replica_id": "job1-worker-r0-a2",
                              "command": ["sleep", "60"]})

    handle = executor.launch(second)

    assert executor.poll(handle).state == "running"


def test_launch_returns_in_milliseconds(executor: LocalExecutor, tmp_path: Path) -> None:
    durations = []
    for index in range(5):
        request = make_request(tmp_path, ["true"], name=f"r{index}")
        started = time.perf_counter()
        executor.launch(request)
        durations.append(time.perf_counter() - started)
    assert sorted(durations)[2] < 0.1


def test_local_executor_satisfies_the_executor_protocol() -> None:
    assert isinstance(LocalExecutor(), Executor)
