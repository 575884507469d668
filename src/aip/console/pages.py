"""The console's read-only pages: overview, nodes, jobs, one job, queues, and the job's live
log stream. Each page is one template over data from ``queries`` or the API's own route
functions (so the console shows what the API returns, field for field).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Annotated

import yaml
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from aip.console import queries
from aip.console.charts import line_chart
from aip.console.forms import QuickForm, example_yaml
from aip.console.web import ConsoleRoute, CurrentSession, render
from aip.control import jobs as job_service
from aip.control import tracking as tracking_service
from aip.control.states import FINAL_STATES
from aip.control.usage import live_replicas
from aip.server import logs
from aip.server.deps import PlatformDep, SessionDep
from aip.server.routes import jobs as job_routes
from aip.server.routes import tracking as tracking_routes
from aip.spec import JobSpec

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
LOG_TAIL_LINES = 500
MAX_CHARTS = 6


@router.get("/")
def overview_page(request: Request, _: CurrentSession, store: SessionDep,
                  platform: PlatformDep) -> Response:
    live = live_replicas(store)  # one load for the capacity meters and the queue usage
    return render(request, "overview.html", nav="overview",
                  overview=queries.overview(store, platform, live),
                  queues=queries.queue_cards(store, platform, pending_limit=0, live=live),
                  events=queries.recent_events(store))


@router.get("/nodes")
def nodes_page(request: Request, _: CurrentSession, store: SessionDep,
               platform: PlatformDep) -> Response:
    return render(request, "nodes.html", nav="nodes", nodes=queries.node_cards(store, platform))


@router.get("/jobs")
def jobs_page(
    request: Request, _: CurrentSession, store: SessionDep,
    state: str = "", queue: str = "", user: str = "", text: str = "",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    filters = queries.JobFilters(state=state.upper(), queue=queue, user=user, text=text,
                                 page=page)
    return render(request, "jobs.html", nav="jobs", listing=queries.job_listing(store, filters),
                  states=queries.STATES, queues=queries.queue_names(store))


@router.get("/jobs/{job_id}")
def job_page(job_id: str, request: Request, _: CurrentSession, store: SessionDep,
             platform: PlatformDep) -> Response:
    job = job_routes.get_job(job_id, store, platform)
    spec = JobSpec.model_validate(job.spec)
    replica_names = [f"{role}-{i}" for role, group in spec.replicas.items()
                     for i in range(group.count)]
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for point in tracking_service.metrics(store, job_id, rank=0):  # rank 0 speaks for all
        if point.value is not None:
            series[point.key].append((float(point.step), point.value))
    charts = [line_chart(key, values) for key, values in sorted(
        series.items(), key=lambda item: (item[0] != "loss", item[0]))[:MAX_CHARTS]]
    return render(
        request, "job.html", nav="jobs", job=job, replica_names=replica_names, charts=charts,
        spec_yaml=yaml.safe_dump(job.spec, sort_keys=False),
        events=job_service.events(store, job_id), final=job.state in FINAL_STATES,
        artifacts=tracking_service.artifacts(store, job_id),
        params=tracking_service.params(store, job_id))


@router.get("/jobs/{job_id}/logs/stream")
def job_log_stream(job_id: str, _: CurrentSession, platform: PlatformDep,
                   replica: str | None = None) -> StreamingResponse:
    """Server-sent events: the last lines, then new lines as they are written; an ``end``
    event once the job is final and its files are drained (the page then stops listening)."""
    sources, finished = job_routes.log_sources(platform, job_id, replica)

    async def events() -> AsyncIterator[str]:
        yield "retry: 2000\n\n"
        async for chunk in logs.follow(sources, LOG_TAIL_LINES, len(sources) > 1, finished):
            text = (chunk[:-1] if chunk.endswith("\n") else chunk).replace("\r", "")
            yield "".join(f"data: {line}\n" for line in text.split("\n")) + "\n"
        yield "event: end\ndata: \n\n"

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get("/jobs/{job_id}/artifacts/{path:path}")
def job_artifact(job_id: str, path: str, _: CurrentSession,
                 platform: PlatformDep) -> StreamingResponse:
    return tracking_routes.download_artifact(job_id, path, platform)


@router.get("/submit")
def submit_page(request: Request, _: CurrentSession, store: SessionDep,
                platform: PlatformDep, from_job: Annotated[str | None, Query(alias="from")] = None
                ) -> Response:
    text = example_yaml()
    if from_job:
        text = yaml.safe_dump(job_routes.get_job(from_job, store, platform).spec,
                              sort_keys=False)
    return render(request, "submit.html", nav="submit", form=QuickForm(), errors={},
                  yaml_text=text, queues=queries.queue_names(store))


@router.get("/queues")
def queues_page(request: Request, _: CurrentSession, store: SessionDep,
                platform: PlatformDep) -> Response:
    return render(request, "queues.html", nav="queues",
                  queues=queries.queue_cards(store, platform))
