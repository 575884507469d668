"""AIP under the serving benchmark, two ways:

- ``AipPlatform``: a real ``aip up``; per variant the model is registered, an endpoint
  deployed, and requests go to its URL (the router, with the endpoint's token) -> one
  replica: what users get;
- ``AipReplica``: the same replica server (``python -m aip.serving.replica``) called
  directly, to show the router's cost.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aip.testing.server import AipServer, free_port
from serving_bench.base import Target, Variant, wait
from serving_bench.models import Model


class AipPlatform:
    """``aip up``; per variant a registered model's endpoint, called through the router."""

    def __init__(self, home: Path, models: dict[str, Model], threads: int,
                 batching: tuple[int, float]) -> None:
        self.home, self.models, self.threads, self.batching = home, models, threads, batching
        self.server: AipServer | None = None

    def start(self) -> str:
        self.server = AipServer(self.home, nodes=[{"name": "bench", "cpu": 8, "memory": "16Gi"}],
                                server={"router_port": free_port()}).start()
        for model in self.models.values():
            self.server.client.register_model(model.name, model.file, model.flavor)
        return (f"aip up ({_version('aip')}): router -> 1 endpoint replica (resources cpu "
                f"{self.threads}: {self.threads} intra-op thread), POST "
                "/v1/models/NAME:predict with the endpoint's token; batching "
                f"{self.batching[0]} rows / {self.batching[1]:g} ms")

    @contextlib.contextmanager
    def serve(self, variant: Variant) -> Iterator[Target]:
        assert self.server is not None
        client = self.server.client
        deployed = client.deploy_endpoint({
            "name": variant.name, "model": f"models:/{variant.model}/1",
            "resources": {"cpu": self.threads, "memory": "1Gi"},
            "batching": _batching_flags(variant.batched, self.batching)})
        try:
            endpoint = wait(lambda: _ready_endpoint(client, variant.name), 120,
                            f"endpoint {variant.name} ready")
            yield Target(f"{endpoint['url']}/v1/models/{variant.name}:predict",
                         {"Authorization": f"Bearer {deployed['token']}"},
                         lambda answer: answer["predictions"])
        finally:
            client.delete_endpoint(variant.name)
            wait(lambda: variant.name not in {e["name"] for e in client.list_endpoints()},
                 60, f"endpoint {variant.name} deleted")

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


class AipReplica:
    """``python -m aip.serving.replica`` alone, no router."""

    def __init__(self, models: dict[str, Model], threads: int,
                 batching: tuple[int, float]) -> None:
        self.models, self.threads, self.batching = models, threads, batching

    def start(self) -> str:
        return (f"python -m aip.serving.replica --threads {self.threads} (uvicorn, uvloop, "
                f"httptools), called directly; batching {self.batching[0]} rows / "
                f"{self.batching[1]:g} ms")

    @contextlib.contextmanager
    def serve(self, variant: Variant) -> Iterator[Target]:
        from aip.serving.replica_process import ReplicaProcess

        flags = _batching_flags(variant.batched, self.batching)
        model_dir = self.models[variant.model].file.parent
        with ReplicaProcess(model_dir, "--threads", str(self.threads), "--max-batch-size",
                            str(flags["max_batch_size"]), "--max-wait-ms",
                            f"{flags['max_wait_ms']:g}", name=variant.name) as replica:
            yield Target(f"{replica.url}/v1/models/{variant.name}:predict", {},
                         lambda answer: answer["predictions"])

    def stop(self) -> None:
        pass


# -- helpers -------------------------------------------------------------------------------

def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def _batching_flags(batched: bool, batching: tuple[int, float]) -> dict[str, Any]:
    size, wait_ms = batching if batched else (1, 0.0)
    return {"max_batch_size": size, "max_wait_ms": wait_ms}


def _ready_endpoint(client: Any, name: str) -> dict[str, Any] | None:
    endpoint: dict[str, Any] = client.get_endpoint(name)
    return endpoint if any(r["state"] == "ready" for r in endpoint["replica_list"]) else None
