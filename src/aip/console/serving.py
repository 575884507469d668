"""Models and endpoints pages: registry versions, aliases and lineage; endpoints with their
replicas, traffic split, QPS and latency; and a form that sends a request through the router.

QPS and latency come from the router the control plane already runs: its ``/-/stats``
(request and error counters per endpoint) and ``/metrics`` (latency histogram sum and
count). The console samples both at most once a second while someone watches an endpoint,
keeps the last ``KEEP`` samples in memory, shows the newest totals and charts the
differences between samples.

The try-a-request form starts from a request that fits the serving version's signature
(``example_request``), at the path the replicas serve: ``/v1/models/<endpoint>:predict``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import Response

from aip.console.charts import line_chart
from aip.console.web import CheckedForm, ConsoleRoute, CurrentSession, render
from aip.control.platform import Platform
from aip.errors import AIPError, InvalidSpec
from aip.registry.uris import parse_model_uri
from aip.server.deps import PlatformDep, SessionDep
from aip.server.routes import endpoints as endpoint_routes
from aip.server.routes import models as model_routes
from aip.spec.model import Signature, TensorSpec

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
KEEP = 180  # samples per endpoint (about three minutes at one a second)
WINDOW = (-60.0, 0.0)  # the charts' x axis: the last minute at least, in seconds from now
MAX_VERSIONS_SHOWN = 20
MAX_RESPONSE_CHARS = 64 * 1024


@router.get("/models")
def models_page(request: Request, _: CurrentSession, store: SessionDep,
                text: str = "") -> Response:
    page = model_routes.list_models(store, name=text or None, limit=200, offset=0)
    return render(request, "models.html", nav="models", models=page.items, total=page.total,
                  text=text)


@router.get("/models/{name}")
def model_page(name: str, request: Request, _: CurrentSession, store: SessionDep) -> Response:
    model = model_routes.get_model(name, store)
    versions = model_routes.version_details(store, name, MAX_VERSIONS_SHOWN)
    return render(request, "model.html", nav="models", model=model, versions=versions)


@router.get("/endpoints")
def endpoints_page(request: Request, _: CurrentSession, store: SessionDep,
                   platform: PlatformDep) -> Response:
    return render(request, "endpoints.html", nav="endpoints",
                  endpoints=endpoint_routes.list_endpoints(store, platform).items)


@router.get("/endpoints/{name}")
def endpoint_page(name: str, request: Request, _: CurrentSession, store: SessionDep,
                  platform: PlatformDep) -> Response:
    return _endpoint(request, name, store, platform, trial=None)


@router.post("/endpoints/{name}/try")
def try_request(name: str, request: Request, _: CurrentSession, form: CheckedForm,
                store: SessionDep, platform: PlatformDep) -> Response:
    """Send one request through the router with the admin token (the router accepts it for
    every endpoint) and show the answer as text."""
    path = form.get("path", "").strip() or "/"
    if not path.startswith("/") or ".." in path or "://" in path:
        raise InvalidSpec("path must be a path on the endpoint, e.g. /v1/models/iris:predict",
                          fields={"path": "must start with /"})
    endpoint_routes.get_endpoint(name, store, platform)  # NotFound for an unknown endpoint
    body = form.get("body", "")
    started = time.perf_counter()
    try:
        answer = httpx.post(f"{platform.router.url}/endpoints/{name}{path}",
                            content=body.encode(), timeout=30, headers={
                                "Authorization": f"Bearer {request.app.state.token}",
                                "Content-Type": "application/json"})
        trial = Trial(path, body, answer.status_code, answer.text[:MAX_RESPONSE_CHARS],
                      (time.perf_counter() - started) * 1000)
    except httpx.HTTPError as exc:
        trial = Trial(path, body, None, f"the router did not answer: {exc}",
                      (time.perf_counter() - started) * 1000)
    return _endpoint(request, name, store, platform, trial=trial)


@dataclass(frozen=True)
class Trial:
    path: str
    body: str
    status: int | None
    response: str
    elapsed_ms: float


def _endpoint(request: Request, name: str, store: Any, platform: Platform,
              trial: Trial | None) -> Response:
    endpoint = endpoint_routes.get_endpoint(name, store, platform)
    sampler: EndpointSampler = request.app.state.console_sampler
    sampler.sample(platform, request.app.state.token)
    qps, latency = sampler.series(name)
    signature = _serving_signature(endpoint, store)
    return render(request, "endpoint.html", nav="endpoints", endpoint=endpoint, trial=trial,
                  totals=sampler.latest(name), signature=signature,
                  qps_chart=line_chart("requests per second", qps, x_range=WINDOW,
                                       y_floor=0),
                  latency_chart=line_chart("mean latency (ms)", latency, " ms",
                                           x_range=WINDOW, y_floor=0),
                  # Replicas serve the model under the endpoint's name, whatever the model's.
                  default_path=f"/v1/models/{endpoint.name}:predict",
                  default_body=example_request(signature))


def example_request(signature: Signature | None) -> str:
    """A ``{"instances": [...]}`` body of one row of zeros that fits ``signature``: the try
    form's starting point, which the model accepts as it is."""
    if signature is None or not signature.inputs:
        return '{"instances": [[0.0]]}'
    rows = {tensor.name: _zeros(tensor) for tensor in signature.inputs}
    instance = next(iter(rows.values())) if len(rows) == 1 else rows
    return json.dumps({"instances": [instance]})


def _zeros(tensor: TensorSpec) -> Any:
    """One row of ``tensor``: its shape without the batch dimension, any size (-1) as 1."""
    dtype = tensor.dtype.lower()
    zero: Any = (False if dtype.startswith("bool") else "" if dtype in ("str", "string",
                 "bytes", "object") else 0 if "int" in dtype else 0.0)
    value = zero
    for size in reversed(tensor.shape[1:]):
        value = [value] * (size if size > 0 else 1)
    return value


def _serving_signature(endpoint: endpoint_routes.EndpointPublic,
                       store: Any) -> Signature | None:
    """The signature of the version that takes the traffic (the first, for a split)."""
    serving = [v for v in endpoint.versions if v.weight > 0 and not v.shadow_percent]
    if not serving:
        return None
    try:
        ref = parse_model_uri(serving[0].uri)
        if ref.version is None:
            return None
        return model_routes.get_version(ref.name, ref.version, store).signature
    except AIPError:  # removed since, or an odd URI: the form still works without it
        return None


@dataclass(frozen=True)
class Sample:
    """The router's counters for one endpoint at one time (totals since the router started)."""

    time: float
    requests: float
    errors: float
    latency_sum: float  # seconds
    latency_count: float

    @property
    def mean_latency_ms(self) -> float | None:
        return self.latency_sum / self.latency_count * 1000 if self.latency_count else None


class EndpointSampler:
    """Samples of the router's counters per endpoint, the last ``keep`` of each."""

    def __init__(self, keep: int = KEEP, min_interval: float = 1.0) -> None:
        self._keep = keep
        self._min_interval = min_interval
        self._last = 0.0
        self._lock = threading.Lock()
        self._history: dict[str, deque[Sample]] = {}

    def sample(self, platform: Platform, token: str) -> None:
        with self._lock:
            now = time.time()
            if now - self._last < self._min_interval:
                return
            self._last = now
        headers = {"Authorization": f"Bearer {token}"}
        try:
            stats = httpx.get(f"{platform.router.url}/-/stats", headers=headers, timeout=1)
            metrics = httpx.get(f"{platform.router.url}/metrics", timeout=1)
        except httpx.HTTPError:
            return  # no router yet (no endpoint deployed): nothing to chart
        if stats.status_code != 200 or metrics.status_code != 200:
            return
        latency = _latency_totals(metrics.text)
        for name, entry in stats.json().get("endpoints", {}).items():
            total, count = latency.get(name, (0.0, 0.0))
            self.record(name, Sample(now, float(entry.get("requests", 0)),
                                     float(entry.get("errors", 0)), total, count))

    def record(self, name: str, sample: Sample) -> None:
        with self._lock:
            self._history.setdefault(name, deque(maxlen=self._keep)).append(sample)

    def latest(self, name: str) -> Sample | None:
        """The newest sample of ``name``: the totals the page shows above the charts."""
        with self._lock:
            history = self._history.get(name)
            return history[-1] if history else None

    def series(self, name: str) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """QPS and mean latency (ms) between consecutive samples, x in seconds from now."""
        with self._lock:
            samples = list(self._history.get(name, ()))
        now = time.time()
        qps, latency = [], []
        for before, after in pairwise(samples):
            if after.time <= before.time:
                continue
            qps.append((after.time - now,
                        max(0.0, after.requests - before.requests) / (after.time - before.time)))
            if after.latency_count > before.latency_count:
                latency.append((after.time - now, (after.latency_sum - before.latency_sum)
                                / (after.latency_count - before.latency_count) * 1000))
        return qps, latency


def _latency_totals(text: str) -> dict[str, tuple[float, float]]:
    """endpoint -> (sum of seconds, count) of ``aip_router_request_seconds``."""
    from prometheus_client.parser import text_string_to_metric_families

    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(text):
            if family.name != "aip_router_request_seconds":
                continue
            for sample in family.samples:
                endpoint = sample.labels.get("endpoint", "")
                if sample.name.endswith("_sum"):
                    sums[endpoint] = sample.value
                elif sample.name.endswith("_count"):
                    counts[endpoint] = sample.value
    except ValueError:
        return {}
    return {name: (sums.get(name, 0.0), counts.get(name, 0.0)) for name in counts}
