"""BentoML under the serving benchmark: ``bentoml serve`` from its own virtual environment
(``--bentoml-venv``, made with pip when missing), one worker, one service file per variant,
``@bentoml.api(batchable=True)`` for batching."""

from __future__ import annotations

import contextlib
import inspect
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx

from aip.testing.server import free_port
from serving_bench.base import Target, Variant, wait
from serving_bench.models import Model, load_predictor

BENTOML_SERVICE = '''\
from __future__ import annotations

from typing import Annotated, Any, Callable

import bentoml
import numpy as np
from bentoml.validators import DType

{predictor}

@bentoml.service(workers=1, threads=1, logging={{"access": {{"enabled": False}}}})
class Predictor:
    def __init__(self) -> None:
        self.model = load_predictor({path!r}, {flavor!r}, {threads})

    @bentoml.api(batchable={batched}, max_batch_size={max_batch_size})
    def predict(self, instances: Annotated[np.ndarray, DType({dtype!r})]) -> np.ndarray:
        return self.model(instances)
'''


class BentoML:
    """``bentoml serve`` from its own virtual environment, one service file per variant."""

    def __init__(self, directory: Path, venv: Path, models: dict[str, Model], threads: int,
                 batching: tuple[int, float]) -> None:
        self.directory, self.venv, self.models = directory, venv, models
        self.threads, self.batching = threads, batching

    def start(self) -> str:
        python = self.venv / "bin" / "python"
        if not python.exists():
            print(f"creating {self.venv} for BentoML (pip install bentoml onnxruntime "
                  "lightgbm numpy uvloop httptools)", file=sys.stderr, flush=True)
            subprocess.run([sys.executable, "-m", "venv", str(self.venv)], check=True)
            subprocess.run([str(python), "-m", "pip", "install", "-q", "bentoml",
                            "onnxruntime", "lightgbm", "numpy", "uvloop", "httptools"],
                           check=True)
        version = subprocess.run([str(python), "-c", "import bentoml; print(bentoml.__version__)"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        return (f"BentoML {version} ({self.venv}): bentoml serve, 1 worker, threads=1, "
                f"{self.threads} intra-op thread, sync @bentoml.api taking an np.ndarray; "
                f"batching @bentoml.api(batchable=True, max_batch_size={self.batching[0]}) "
                "(adaptive wait); access log off")

    @contextlib.contextmanager
    def serve(self, variant: Variant) -> Iterator[Target]:
        model = self.models[variant.model]
        directory = self.directory / variant.name
        directory.mkdir(parents=True)
        (directory / "service.py").write_text(BENTOML_SERVICE.format(
            predictor=inspect.getsource(load_predictor), path=str(model.file),
            flavor=model.flavor, threads=self.threads, batched=variant.batched,
            max_batch_size=self.batching[0], dtype=str(model.rows.dtype)))
        port = free_port()
        env = {**os.environ, "BENTOML_HOME": str(self.directory / "home"),
               "BENTOML_DO_NOT_TRACK": "True", "PATH": f"{self.venv}/bin:{os.environ['PATH']}"}
        env.pop("VIRTUAL_ENV", None)
        with open(directory / "server.log", "wb") as log:
            process = subprocess.Popen(
                [str(self.venv / "bin" / "bentoml"), "serve", "service:Predictor", "--host",
                 "127.0.0.1", "--port", str(port)], cwd=directory, env=env, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait(lambda: _answers(process, f"http://127.0.0.1:{port}/readyz", directory), 120,
                 f"bentoml serve {variant.name} ready")
            yield Target(f"http://127.0.0.1:{port}/predict", {}, lambda answer: answer)
        finally:
            _stop_group(process)

    def stop(self) -> None:
        pass


def _answers(process: subprocess.Popen[bytes], url: str, directory: Path) -> bool:
    if process.poll() is not None:
        raise RuntimeError(f"bentoml serve exited with {process.returncode}: "
                           f"{(directory / 'server.log').read_text()[-1500:]}")
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """Stop a process that leads its own session, and everything it started."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
