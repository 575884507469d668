"""A replica's Prometheus metrics (``GET /metrics``), in a registry of its own.

    aip_replica_requests_total{model, route, status}     requests answered
    aip_replica_request_seconds{model, route}            latency, receipt to last byte
    aip_replica_inference_seconds{model}                 one predict call (one batch)
    aip_replica_batch_size{model}                        rows per predict call
    aip_replica_queue_depth{model}                       requests waiting for or in predict
    aip_replica_ready{model}                             1 once the model is loaded

Routes are fixed names (``infer``, ``predict``, ``metadata``, ``health``, ``metrics``,
``other``), never raw paths, so the label set stays small. Label children are cached: a
request costs a dictionary lookup and two increments.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class ReplicaMetrics:
    def __init__(self, model: str, queue_depth: Callable[[], float] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._model = model
        self._requests = Counter("aip_replica_requests", "Requests answered, by route and "
                                 "HTTP status", ["model", "route", "status"],
                                 registry=self.registry)
        self._latency = Histogram("aip_replica_request_seconds", "Request latency from "
                                  "receipt to the response's last byte", ["model", "route"],
                                  buckets=LATENCY_BUCKETS, registry=self.registry)
        inference = Histogram("aip_replica_inference_seconds", "Duration of one predict call",
                              ["model"], buckets=LATENCY_BUCKETS, registry=self.registry)
        batch_size = Histogram("aip_replica_batch_size", "Rows per predict call", ["model"],
                               buckets=BATCH_BUCKETS, registry=self.registry)
        depth = Gauge("aip_replica_queue_depth", "Requests waiting for or in predict",
                      ["model"], registry=self.registry)
        ready = Gauge("aip_replica_ready", "1 once the model is loaded", ["model"],
                      registry=self.registry)
        self._inference = inference.labels(model)
        self._batch_size = batch_size.labels(model)
        self._ready = ready.labels(model)
        if queue_depth is not None:
            depth.labels(model).set_function(queue_depth)
        self._request_children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        children = self._request_children.get((route, status))
        if children is None:
            children = (self._requests.labels(self._model, route, str(status)),
                        self._latency.labels(self._model, route))
            self._request_children[(route, status)] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_batch(self, rows: int, seconds: float) -> None:
        self._batch_size.observe(rows)
        self._inference.observe(seconds)

    def set_ready(self, ready: bool) -> None:
        self._ready.set(1 if ready else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)
