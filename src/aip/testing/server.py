"""A real ``aip up`` process on a free loopback port, with its own AIP_HOME and config.

    with AipServer(tmp_path, nodes=[...]) as server:
        job = server.client.submit_job({...})
    with AipServer(tmp_path, backend="ray", ray_address=cluster.address) as server:
        ...                       # nodes come from the Ray cluster

Nothing of AIP is mocked: the server runs its store, reconciler and executor, and jobs are
real subprocesses.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from aip.client import Client
from aip.processes import stop_process

DEFAULT_NODES = [{"name": "node-a", "cpu": 8, "memory": "16Gi",
                  "gpus": {"count": 4, "model": "T4", "memory": "16Gi"},
                  "accelerators": {"tpu": 4}}]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AipServer:
    def __init__(self, home: Path, *, nodes: list[dict[str, Any]] | None = None,
                 server: dict[str, Any] | None = None, database_url: str | None = None,
                 backend: str | None = None, ray_address: str | None = None,
                 env: dict[str, str] | None = None,
                 storage: dict[str, Any] | None = None) -> None:
        """``backend``/``ray_address`` are passed as ``aip up --backend/--ray-address``; with
        the ray backend the config declares no nodes (they come from Ray)."""
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        self.extra_env = dict(env or {})  # e.g. AIP_ENV_CACHE, applied over the cleaned env
        self.up_args = [*(["--backend", backend] if backend else []),
                        *(["--ray-address", ray_address] if ray_address else [])]
        config: dict[str, Any] = {"server": {"stop_grace_period": 1, "retry_backoff_base": 0.2,
                                             **(server or {})}}
        if backend != "ray":
            config["nodes"] = nodes if nodes is not None else DEFAULT_NODES
        if storage is not None:  # e.g. MotoS3(...).storage_config: artifacts in object storage
            config["storage"] = storage
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.yaml").write_text(yaml.safe_dump(config))
        self.process: subprocess.Popen[bytes] | None = None
        self._client: Client | None = None

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIP_")}
        env["AIP_HOME"] = str(self.home)
        if self.database_url:
            env["AIP_DATABASE_URL"] = self.database_url
        env.update(self.extra_env)
        return env

    def start(self) -> AipServer:
        log = open(self.home / "server.log", "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "aip", "up", "--port", str(self.port), *self.up_args],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"aip up exited early:\n{self.server_log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    pass
                info = json.loads((self.home / "server.json").read_text())
                if info.get("pid") == self.process.pid:
                    self._client = None
                    return self
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"aip up did not answer within 30 s:\n{self.server_log()}")

    @property
    def token(self) -> str:
        return (self.home / "token").read_text().strip()

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(server=self.url, token=self.token)
        return self._client

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run the real ``aip`` CLI against this server (found through AIP_HOME)."""
        return subprocess.run([sys.executable, "-m", "aip", *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def kill(self) -> None:
        """SIGKILL the server alone: its replicas live on in their own sessions."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        stop_process(self.process, timeout=15)

    def server_log(self) -> str:
        try:
            return (self.home / "server.log").read_text()[-4000:]
        except OSError:
            return ""

    def __enter__(self) -> AipServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop_everything()
        self.stop()

    def stop_everything(self, timeout: float = 20) -> None:
        """Delete the endpoints and cancel the jobs still alive, so no replica outlives the
        test (replicas run in their own sessions and survive the server by design)."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            client = self.client
            for endpoint in client.list_endpoints():
                client.delete_endpoint(endpoint["name"])
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                live = [job for job in client.list_jobs(limit=500)["items"]
                        if job["state"] not in ("SUCCEEDED", "FAILED", "CANCELLED")]
                if not live and not client.list_endpoints():
                    return
                for job in live:
                    try:
                        client.cancel_job(job["id"])
                    except Exception:  # already ending: the next look sees it
                        pass
                time.sleep(0.3)
        except Exception:  # the server is going away anyway; stop() follows
            return


def wait_for(predicate: Callable[[], Any], timeout: float = 20, interval: float = 0.05,
             message: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


def job_spec(name: str, code: str, **fields: Any) -> dict[str, Any]:
    """A one-replica job running ``python -c code``."""
    resources = fields.pop("resources", {"cpu": 0.5, "memory": "128Mi"})
    count = fields.pop("count", 1)
    return {"name": name, "replicas": {"worker": {
        "count": count, "command": [sys.executable, "-c", code], "resources": resources}},
        **fields}
