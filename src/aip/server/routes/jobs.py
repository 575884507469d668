"""Job routes: submit, list, get, cancel, events, logs. Thin: one service call each."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from aip.control import jobs as job_service
from aip.control.platform import Platform
from aip.control.states import FINAL_STATES
from aip.errors import DOCUMENT, InvalidSpec
from aip.server import logs
from aip.server.bodies import body_schema, body_text, is_yaml, parse_body, parse_text
from aip.server.deps import PlatformDep, SessionDep
from aip.server.schemas import EventList, JobPage, JobPublic, event_public, job_public
from aip.spec import JobSpec
from aip.store.tables import JobRow, ReplicaRow

router = APIRouter(prefix="/jobs", tags=["jobs"])


class SpecError(BaseModel):
    field: str  # the field path (replicas.worker.resources.gpu), or (document)
    message: str
    line: int | None  # in the YAML text, when known


class SpecCheck(BaseModel):
    valid: bool
    message: str | None
    errors: list[SpecError]


@router.post("", status_code=201, response_model=JobPublic, openapi_extra=body_schema(JobSpec))
async def submit_job(request: Request, platform: PlatformDep) -> Response:
    """Submit a job as JSON, or as YAML (``Content-Type: application/yaml``) to get errors
    with line numbers."""
    spec = await parse_body(request, JobSpec, "job spec")
    public = submit_spec(platform, spec)
    # Serialized here: returning a Response spares FastAPI validating the model again.
    return Response(public.model_dump_json(), status_code=201, media_type="application/json")


@router.post("/validate", response_model=SpecCheck, openapi_extra=body_schema(JobSpec))
async def validate_job(request: Request) -> SpecCheck:
    """Check a job spec against the server's schema without submitting it: 200 with
    ``valid`` and one error per field (its path, message and YAML line). Whether the queue
    exists and a node could hold the job is checked at submit."""
    return check_spec(await body_text(request), yaml_body=is_yaml(request))


def submit_spec(platform: Platform, spec: JobSpec) -> JobPublic:
    """Store a validated spec as a new PENDING job and wake the scheduler (the API and the
    console submit through here)."""
    for attempt in range(3):
        try:
            with platform.sessions.begin() as session:
                row = job_service.submit(session, spec, platform.nodes(), platform.clock())
                public = job_public(row, [], str(platform.launcher.job_dir(row.id) / "output"))
            break
        except IntegrityError:  # the random job id was taken: draw another
            if attempt == 2:
                raise
    platform.reconciler.wake(new_jobs_only=True)
    return public


def check_spec(text: str, *, yaml_body: bool) -> SpecCheck:
    """The result of validating ``text`` (YAML or JSON) as a JobSpec, errors as data."""
    try:
        parse_text(text, JobSpec, "job spec", yaml_text=yaml_body)
    except InvalidSpec as exc:
        if DOCUMENT in exc.lines or not exc.fields:  # does not parse: one error for the text
            errors = [SpecError(field=DOCUMENT, message=exc.message,
                                line=exc.lines.get(DOCUMENT))]
        else:
            errors = [SpecError(field=path, message=message, line=exc.lines.get(path))
                      for path, message in exc.fields.items()]
        return SpecCheck(valid=False, message=exc.message, errors=errors)
    return SpecCheck(valid=True, message=None, errors=[])


@router.get("", response_model=JobPage)
def list_jobs(
    session: SessionDep, platform: PlatformDep,
    state: Annotated[list[str] | None, Query(description="Filter by state; repeatable.")] = None,
    queue: str | None = None,
    name: Annotated[str | None, Query(description="Text in the job's name or id.")] = None,
    label: Annotated[list[str] | None, Query(description="key=value; repeatable.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JobPage:
    labels = dict(_label(item) for item in label or [])
    rows, total = job_service.list_jobs(session, job_service.JobFilter(
        states=state or (), queue=queue, text=name, labels=labels, limit=limit, offset=offset))
    replicas = _replicas_by_job(session, rows)
    nodes = platform.nodes()
    items = [job_public(row, replicas.get(row.id, []),
                        str(platform.launcher.job_dir(row.id) / "output"), nodes) for row in rows]
    return JobPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/{job_id}", response_model=JobPublic)
def get_job(job_id: str, session: SessionDep, platform: PlatformDep) -> JobPublic:
    row = job_service.get(session, job_id)
    return job_public(row, job_service.replicas_of(session, row),
                      str(platform.launcher.job_dir(row.id) / "output"), platform.nodes())


@router.post("/{job_id}/cancel", status_code=202, response_model=JobPublic)
def cancel_job(job_id: str, platform: PlatformDep) -> JobPublic:
    with platform.sessions.begin() as session:
        row = job_service.request_cancel(session, job_id, platform.clock())
        public = job_public(row, job_service.replicas_of(session, row),
                            str(platform.launcher.job_dir(row.id) / "output"), platform.nodes())
    platform.reconciler.wake()
    return public


@router.get("/{job_id}/events", response_model=EventList)
def job_events(job_id: str, session: SessionDep) -> EventList:
    return EventList(items=[event_public(e) for e in job_service.events(session, job_id)])


@router.get("/{job_id}/logs", response_class=PlainTextResponse, response_model=None)
def job_logs(
    job_id: str, platform: PlatformDep,
    replica: Annotated[str | None, Query(description="e.g. worker-0; default: all")] = None,
    tail: Annotated[int | None, Query(ge=0, description="Only the last N lines.")] = None,
    follow: bool = False,
) -> Response:
    sources, finished = log_sources(platform, job_id, replica)
    prefix = replica is None and len(sources) > 1
    if not follow:
        return PlainTextResponse(logs.tail(sources, tail, prefix))
    return StreamingResponse(logs.follow(sources, tail, prefix, finished),
                             media_type="text/plain; charset=utf-8")


def log_sources(platform: Platform, job_id: str, replica: str | None
                ) -> tuple[list[tuple[str, str]], Callable[[], bool]]:
    """The job's log files as ``(replica name, path)`` (one replica's, or all), and a check
    that says when the job is final (a follower then drains the files and stops)."""
    with platform.sessions() as session:
        job = job_service.get(session, job_id)
        spec = JobSpec.model_validate_json(job.spec)
        sources = _log_sources(platform.launcher.job_dir(job.id), spec, replica)

    def finished() -> bool:
        with platform.sessions() as session:
            state = session.scalar(select(JobRow.state).where(JobRow.id == job_id))
        return state in FINAL_STATES

    return sources, finished


def _label(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise InvalidSpec(f"label filter {item!r} must be key=value", fields={"label": item})
    return key, value


def _replicas_by_job(session: SessionDep, rows: list[JobRow]) -> dict[str, list[ReplicaRow]]:
    if not rows:
        return {}
    attempts = {row.id: row.attempt for row in rows}
    result: dict[str, list[ReplicaRow]] = {}
    current = [replica for replica in session.scalars(select(ReplicaRow).where(
        ReplicaRow.job_id.in_(attempts)).order_by(ReplicaRow.role, ReplicaRow.index))
        if replica.attempt == attempts[replica.job_id]]
    for replica in job_service.newest_generations(current):
        result.setdefault(replica.job_id, []).append(replica)
    return result


def _log_sources(job_dir: Path, spec: JobSpec, replica: str | None) -> list[tuple[str, str]]:
    names = [f"{role}-{i}" for role, group in spec.replicas.items() for i in range(group.count)]
    if replica is not None:
        if replica not in names:
            raise InvalidSpec(f"job has no replica {replica!r}; it has: {', '.join(names)}",
                              fields={"replica": f"unknown replica {replica!r}"})
        names = [replica]
    return [(name, str(job_dir / "logs" / f"{name}.log")) for name in names]
