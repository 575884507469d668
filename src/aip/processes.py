"""Child processes AIP starts itself (the router, a replica server, a test's ``aip up``)."""

from __future__ import annotations

import subprocess


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """SIGTERM ``process`` if it still runs, SIGKILL it after ``timeout`` seconds, and reap
    it, so no zombie is left behind."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
