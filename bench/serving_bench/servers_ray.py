"""Ray Serve under the serving benchmark: a local Ray started in this process (``serve.run``),
per variant a Serve application behind Serve's HTTP proxy -> one replica actor, with
``@serve.batch`` for batching."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from aip.testing.server import free_port
from serving_bench.base import Target, Variant, handle_signals
from serving_bench.models import Model, load_predictor

RAY_MAX_ONGOING = 128  # above the highest concurrency: Ray's default (5) would queue in the proxy


class RayServe:
    """A local Ray started here; per variant a Serve application behind Serve's HTTP proxy."""

    def __init__(self, models: dict[str, Model], threads: int,
                 batching: tuple[int, float]) -> None:
        self.models, self.threads, self.batching = models, threads, batching
        self.port = free_port()
        self.started = False

    def start(self) -> str:
        import ray
        from ray import cloudpickle, serve

        self.started = True
        # Ray starts its workers at nice 15; at 0 they compete with the client and the other
        # servers' processes on equal terms.
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR", configure_logging=False,
                 _system_config={"worker_niceness": 0})
        handle_signals()  # ray.init installs its own
        # The replicas get load_predictor by value, as when it lived in the script itself:
        # they need not import the bench's modules.
        cloudpickle.register_pickle_by_value(sys.modules[load_predictor.__module__])
        serve.start(http_options={"host": "127.0.0.1", "port": self.port},
                    logging_config={"log_level": "WARNING", "enable_access_log": False})
        return (f"Ray Serve {ray.__version__}: HTTP proxy -> 1 replica actor (num_cpus "
                f"{self.threads}, {self.threads} intra-op thread, max_ongoing_requests "
                f"{RAY_MAX_ONGOING}), async __call__ reading request.json(); batching "
                f"@serve.batch({self.batching[0]}, {self.batching[1]:g} ms); access log off")

    @contextlib.contextmanager
    def serve(self, variant: Variant) -> Iterator[Target]:
        from ray import serve

        model = self.models[variant.model]
        deployment = ray_deployment(variant.batched, *self.batching).options(
            num_replicas=1, max_ongoing_requests=RAY_MAX_ONGOING,
            ray_actor_options={"num_cpus": self.threads},
            logging_config={"log_level": "WARNING", "enable_access_log": False})
        serve.run(deployment.bind(str(model.file), model.flavor, self.threads,
                                  str(model.rows.dtype)),
                  name=variant.name, route_prefix=f"/{variant.name}")
        try:
            yield Target(f"http://127.0.0.1:{self.port}/{variant.name}", {},
                         lambda answer: answer["predictions"])
        finally:
            serve.delete(variant.name)

    def stop(self) -> None:
        if not self.started:
            return
        import ray
        from ray import serve

        with contextlib.suppress(Exception):
            serve.shutdown()
        ray.shutdown()


def ray_deployment(batched: bool, max_batch_size: int, max_wait_ms: float) -> Any:
    """The Ray Serve deployment as its documentation writes one: the model is called in the
    replica's request handler, or in an ``@serve.batch`` method."""
    from ray import serve
    from starlette.requests import Request

    class Predictor:
        def __init__(self, path: str, flavor: str, threads: int, dtype: str) -> None:
            self.predict = load_predictor(path, flavor, threads)
            self.dtype = dtype

        async def __call__(self, request: Request) -> dict[str, Any]:
            rows = np.asarray((await request.json())["instances"], dtype=self.dtype)
            outputs = await self.predict_batch(rows) if batched else self.predict(rows)
            return {"predictions": outputs.tolist()}

        @serve.batch(max_batch_size=max_batch_size, batch_wait_timeout_s=max_wait_ms / 1000)
        async def predict_batch(self, requests: list[np.ndarray]) -> list[np.ndarray]:
            outputs = self.predict(np.concatenate(requests))
            return np.split(outputs, np.cumsum([len(rows) for rows in requests])[:-1])

    return serve.deployment(Predictor)
