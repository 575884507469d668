"""A replica server in a child process on a free loopback port, for tests and benchmarks.

    with ReplicaProcess(model_dir, "--max-batch-size", "32") as replica:
        httpx.post(f"{replica.url}/v2/models/{replica.name}/infer", json=...)

``__enter__`` returns once ``/v2/health/ready`` answers 200 (the model is loaded), or raises
with the tail of the replica's log when it exits or does not get ready in ``ready_timeout``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx

from aip.processes import stop_process


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ReplicaProcess:
    def __init__(self, model_dir: Path, *args: str, name: str | None = None,
                 ready_timeout: float = 60.0, env: dict[str, str] | None = None) -> None:
        self.model_dir = model_dir
        self.name = name or model_dir.resolve().name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ready_timeout = ready_timeout
        self._command = [sys.executable, "-m", "aip.serving.replica", "--model-dir",
                         str(model_dir), "--port", str(self.port), "--log-level", "warning",
                         *(["--name", name] if name else []), *args]
        self._env = {**os.environ, **(env or {})}
        self._log = tempfile.TemporaryFile()  # noqa: SIM115  (log_tail reads it after exit)
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ReplicaProcess:
        self.process = subprocess.Popen(self._command, stdout=self._log,
                                        stderr=subprocess.STDOUT, env=self._env)
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the replica exited with {self.process.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the replica was not ready in {self.ready_timeout}s:\n"
                           f"{self.log_tail()}")

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        stop_process(self.process)

    def log_tail(self, size: int = 4000) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-size:]
