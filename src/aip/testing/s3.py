"""A real S3-compatible endpoint for tests: moto's standalone server (``python -m moto.server``)
in its own process on a free loopback port, speaking the S3 HTTP protocol, with one bucket.

    with MotoS3(tmp_path) as s3:
        store = ArtifactStore(s3.url, options=s3.options)        # s3://aip-test/artifacts
        store = s3.store("run-7")                                 # a fresh prefix
        AipServer(home, env=s3.env, ...)                          # credentials for a server
        config = {"storage": s3.storage_config}                  # config.yaml's section

Nothing is mocked inside the process under test: s3fs, aiobotocore and aiohttp talk HTTP to
the server exactly as they would to AWS or MinIO. ``MotoS3.unavailable()`` says why the
harness cannot run here (moto or s3fs missing), so fixtures can skip cleanly.

``require_auth=True`` turns on moto's IAM checks after the bucket is made: every request
with the harness's made-up credentials is then refused, as a real store refuses wrong keys.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aip.testing.server import free_port

if TYPE_CHECKING:
    from aip.storage.store import ArtifactStore

ACCESS_KEY_ID = "aip-test-key"
SECRET_ACCESS_KEY = "aip-test-secret"  # made up: moto accepts any credentials
REGION = "us-east-1"
START_TIMEOUT = 30.0


class MotoS3:
    def __init__(self, workdir: Path, *, bucket: str = "aip-test", prefix: str = "artifacts",
                 require_auth: bool = False) -> None:
        """``workdir`` holds the server's log (``moto-<port>.log``)."""
        self.workdir = workdir
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.require_auth = require_auth
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def unavailable() -> str | None:
        """Why the harness cannot run in this interpreter, or None when it can."""
        for module, extra in (("moto", "moto[server]"), ("flask", "moto[server]"),
                              ("s3fs", "aip[s3]")):
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed (pip install '{extra}')"
        return None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``s3://bucket/prefix``: the store URL of this harness."""
        return self.url_for(self.prefix)

    def url_for(self, prefix: str) -> str:
        prefix = prefix.strip("/")
        return f"s3://{self.bucket}/{prefix}" if prefix else f"s3://{self.bucket}"

    @property
    def options(self) -> dict[str, Any]:
        """What ``ArtifactStore(url, options=...)`` needs to reach this server."""
        return {"endpoint_url": self.endpoint_url, "key": ACCESS_KEY_ID,
                "secret": SECRET_ACCESS_KEY, "region": REGION}

    @property
    def env(self) -> dict[str, str]:
        """Credentials as a process (``aip up``) reads them: the standard AWS variables."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
                "AWS_DEFAULT_REGION": REGION}

    @property
    def storage_config(self) -> dict[str, Any]:
        """The ``storage:`` section of ``config.yaml`` for a server using this endpoint."""
        return {"url": self.url, "endpoint_url": self.endpoint_url, "region": REGION}

    def store(self, prefix: str | None = None) -> ArtifactStore:
        from aip.storage.store import ArtifactStore

        return ArtifactStore(self.url_for(self.prefix if prefix is None else prefix),
                             options=self.options)

    def start(self) -> MotoS3:
        problem = self.unavailable()
        if problem:
            raise RuntimeError(f"cannot start moto's S3 server: {problem}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
        if self.require_auth:
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = "1"  # the bucket's creation, then IAM checks
        log_path = self.workdir / f"moto-{self.port}.log"
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._create_bucket(time.monotonic() + START_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def server_log(self) -> str:
        try:
            return (self.workdir / f"moto-{self.port}.log").read_text()[-4000:]
        except OSError:
            return ""

    def _create_bucket(self, deadline: float) -> None:
        """PUT /bucket (path style, unsigned: moto allows it) until the server answers."""
        request = urllib.request.Request(f"{self.endpoint_url}/{self.bucket}", method="PUT")
        # Loopback only: a proxy from the environment must not carry the request away.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"moto's S3 server exited early:\n{self.server_log()}")
            try:
                with opener.open(request, timeout=2) as response:
                    if response.status == 200:
                        return
            except urllib.error.HTTPError as exc:
                raise RuntimeError(f"moto refused to create bucket {self.bucket!r}: "
                                   f"HTTP {exc.code}\n{self.server_log()}") from None
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"moto's S3 server did not answer within {START_TIMEOUT:.0f}"
                                   f" s:\n{self.server_log()}")
            time.sleep(0.05)

    def __enter__(self) -> MotoS3:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
