"""The replica wrapper: supervises one replica's command and records how it ended.

``LocalExecutor`` runs it, never through a shell, as::

    python -I -S wrapper.py STATUS_DIR -- COMMAND [ARG ...]

in a new session, so the wrapper's pid is also the process group id of the replica; its
stdout and stderr are already the replica's log file. It is stdlib-only and imports little
before the command starts (``-I``: no user site, PYTHON* variables ignored; ``-S``: no
site-packages), so the command starts about 15 ms after the launch.

What it does, in order:

1. Handles SIGTERM and SIGINT: each is relayed once to the whole process group (the command
   and everything it started), and the wrapper itself keeps running to record the outcome.
   A stop signal that arrives before the command started means it is never started.
2. Starts the command as its child, in the same process group, with default signal
   dispositions and an empty signal mask. If it cannot be started it writes exit code 127
   (not found) or 126 (not executable) and says why in the log.
3. Writes ``STATUS_DIR/started.json``: {"pid", "child_pid", "started_at", "create_time"}.
4. Waits for the command, then writes ``STATUS_DIR/exit.json``:
   {"exit_code", "signal", "finished_at", "child_pid"} (+ "error" if it never started).
   A command ended by a signal gets exit code 128 + signal number, and ``signal`` names it.
   The command may say why it failed in one line written to ``$AIP_REASON_FILE``
   (``STATUS_DIR/reason``, set by the wrapper); that line becomes the exit's "reason".
5. Kills (SIGKILL) processes the command left behind in its process group, as a container
   runtime does when a container's main process exits, so nothing outlives its replica.

Status files are written atomically (temporary file, then ``os.replace``): a reader sees a
whole file or none. The wrapper exits with the command's exit code.
"""

from __future__ import annotations

# ``_signal`` is the C module behind ``signal``: importing ``signal`` pulls in ``enum``, a
# third of the wrapper's start-up time. Signal names are looked up after the command ends.
import _signal
import os
import sys
import time

STARTED_FILE = "started.json"
EXIT_FILE = "exit.json"
REASON_FILE = "reason"
REASON_FILE_ENV = "AIP_REASON_FILE"
MAX_REASON_LENGTH = 500
STOP_SIGNALS = (_signal.SIGTERM, _signal.SIGINT)
# Started with their default action whatever the wrapper inherited: Python ignores SIGPIPE
# and SIGXFSZ, nohup ignores SIGHUP, and the wrapper itself handles the stop signals.
_DEFAULT_ACTION_SIGNALS = tuple(
    sig for sig in (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP, _signal.SIGQUIT,
                    _signal.SIGPIPE, getattr(_signal, "SIGXFSZ", None), _signal.SIGUSR1,
                    _signal.SIGUSR2, _signal.SIGCHLD, _signal.SIGALRM)
    if sig is not None)
_MAX_LEFTOVER_ROUNDS = 20


class _Supervisor:
    def __init__(self) -> None:
        self.child_pid: int | None = None
        self.early_stop: int | None = None

    def on_stop_signal(self, signum: int, frame: object) -> None:
        if self.child_pid is None:
            self.early_stop = signum  # the command has not started: it never will
            return
        _signal_group_once(signum)


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        print("usage: wrapper.py STATUS_DIR -- COMMAND [ARG ...]", file=sys.stderr)
        return 2
    status_dir, command = argv[1], argv[3:]
    supervisor = _Supervisor()
    for signum in STOP_SIGNALS:
        _signal.signal(signum, supervisor.on_stop_signal)
    # Hold stop signals while the command starts, so one that arrives now is relayed to the
    # command once it exists instead of racing its creation.
    previous_mask = _signal.pthread_sigmask(_signal.SIG_BLOCK, STOP_SIGNALS)
    if supervisor.early_stop is not None:
        return _record_signalled(status_dir, supervisor.early_stop, child_pid=None)
    os.environ[REASON_FILE_ENV] = os.path.join(os.path.abspath(status_dir), REASON_FILE)
    try:
        child_pid = os.posix_spawnp(command[0], command, os.environ, setsigmask=(),
                                    setsigdef=_DEFAULT_ACTION_SIGNALS)
    except OSError as exc:
        return _record_start_failure(status_dir, command[0], exc)
    supervisor.child_pid = child_pid
    _write_json(status_dir, STARTED_FILE, {
        "pid": os.getpid(), "child_pid": child_pid, "started_at": time.time(),
        "create_time": _own_create_time()})
    _signal.pthread_sigmask(_signal.SIG_SETMASK, previous_mask)

    _, wait_status = os.waitpid(child_pid, 0)  # retried after signal handlers (PEP 475)
    if os.WIFSIGNALED(wait_status):
        exit_code = _record_signalled(status_dir, os.WTERMSIG(wait_status), child_pid)
    else:
        exit_code = os.WEXITSTATUS(wait_status)
        _write_json(status_dir, EXIT_FILE, {
            "exit_code": exit_code, "signal": None, "finished_at": time.time(),
            "child_pid": child_pid, "reason": _read_reason(status_dir)})
    _kill_leftovers()
    return exit_code


def _signal_group_once(signum: int) -> None:
    """Send ``signum`` to the whole process group without it coming back to the wrapper as a
    fresh signal (which would relay it again, forever)."""
    previous_mask = _signal.pthread_sigmask(_signal.SIG_BLOCK, {signum})
    try:
        os.killpg(os.getpgrp(), signum)
        if hasattr(_signal, "sigtimedwait"):
            _signal.sigtimedwait({signum}, 0)  # swallow the copy the wrapper sent itself
    finally:
        _signal.pthread_sigmask(_signal.SIG_SETMASK, previous_mask)


def _record_signalled(status_dir: str, signum: int, child_pid: int | None) -> int:
    name = _signal_name(signum)
    what = "the command" if child_pid is not None else "the replica, before its command started,"
    print(f"aip: {what} was killed by signal {signum} ({name})", file=sys.stderr, flush=True)
    _write_json(status_dir, EXIT_FILE, {
        "exit_code": 128 + signum, "signal": name, "finished_at": time.time(),
        "child_pid": child_pid, "reason": _read_reason(status_dir)})
    return 128 + signum


def _record_start_failure(status_dir: str, program: str, exc: OSError) -> int:
    exit_code = 127 if isinstance(exc, FileNotFoundError) else 126
    reason = exc.strerror or str(exc)
    hint = (" (is it installed and on PATH?)" if "/" not in program else "") \
        if exit_code == 127 else ""
    message = f"cannot run {program!r}: {reason}{hint}"
    print(f"aip: {message}", file=sys.stderr, flush=True)
    _write_json(status_dir, EXIT_FILE, {
        "exit_code": exit_code, "signal": None, "finished_at": time.time(), "child_pid": None,
        "error": message})
    return exit_code


def _read_reason(status_dir: str) -> str | None:
    """The first line the command wrote to its reason file, if any."""
    try:
        with open(os.path.join(status_dir, REASON_FILE), encoding="utf-8",
                  errors="replace") as reason_file:
            line = reason_file.readline(MAX_REASON_LENGTH + 1).strip()
    except OSError:
        return None
    if len(line) > MAX_REASON_LENGTH:
        line = line[:MAX_REASON_LENGTH - 3] + "..."
    return line or None


def _kill_leftovers() -> None:
    """SIGKILL what the command left running in our process group (Linux: found via /proc)."""
    group, me = os.getpgrp(), os.getpid()
    for _ in range(_MAX_LEFTOVER_ROUNDS):  # a leftover may fork while we look
        leftovers = [pid for pid in _group_members(group) if pid != me]
        if not leftovers:
            return
        for pid in leftovers:
            try:
                os.kill(pid, _signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.001)


def _group_members(group: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``group``."""
    members = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat_file:
                stat = stat_file.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()  # after "pid (comm) "
        if len(fields) > 2 and fields[0] not in (b"Z", b"X") and int(fields[2]) == group:
            members.append(int(entry))
    return members


def _own_create_time() -> float | None:
    """This process's start in seconds since the epoch, computed as psutil does on Linux."""
    try:
        with open("/proc/self/stat", "rb") as stat_file:
            stat = stat_file.read()
        start_ticks = int(stat[stat.rfind(b")") + 2:].split()[19])
        with open("/proc/stat", "rb") as proc_stat:
            boot_time = next(float(line.split()[1]) for line in proc_stat
                             if line.startswith(b"btime"))
        return start_ticks / os.sysconf("SC_CLK_TCK") + boot_time
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _signal_name(signum: int) -> str:
    import signal

    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"SIG{signum}"


def _write_json(status_dir: str, name: str, payload: dict[str, object]) -> None:
    import json  # after the command started: keeps it off the launch path

    path = os.path.join(status_dir, name)
    temporary = os.path.join(status_dir, f".{name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8") as out:
            json.dump(payload, out)
        os.replace(temporary, path)
    except OSError as exc:
        print(f"aip: cannot write {path}: {exc}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
