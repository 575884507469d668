"""Tracking routes: the metrics, params and artifacts of a job.

    POST /jobs/{id}/metrics                 a batch of points      (SDK: aip.log_metrics)
    GET  /jobs/{id}/metrics?key=&replica=   points by key, rank, step
    POST /jobs/{id}/params                  params                 (SDK: aip.log_params)
    GET  /jobs/{id}/params
    POST /jobs/{id}/artifacts?path=P        the body, streamed into the artifact store as
                                            jobs/<id>/P            (SDK: aip.log_artifact)
    GET  /jobs/{id}/artifacts?prefix=       the artifact files
    GET  /jobs/{id}/artifacts/{path}        one file, streamed, with its sha256 in X-AIP-SHA256

Unlike the other routes, these take a job token (``AIP_JOB_TOKEN`` of the job's replicas) as
well as the admin token: a job token opens its own job's tracking and nothing else. A job
token used on another job gets 404, so a token does not tell which other jobs exist.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any, BinaryIO, cast

import anyio
import anyio.from_thread
import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, field_validator

from aip.control import tracking as tracking_service
from aip.errors import NotFound, Unauthorized
from aip.server.deps import PlatformDep, SessionDep
from aip.server.schemas import iso
from aip.server.streams import BodyReader, chunks
from aip.store.tracking_tables import ArtifactRow, MetricRow
from aip.tracking import (
    ARTIFACT_SHA256_HEADER,
    MAX_BATCH,
    MAX_PARAM_VALUE_LENGTH,
    MAX_STEP,
    InvalidTrackingData,
    check_key,
)

MAX_RANK = 2**31 - 1
TOKEN_CACHE_SIZE = 4096


def authorize_job(request: Request, job_id: str, platform: PlatformDep) -> None:
    """The admin token, or the token of job ``job_id``; 401 for no or an unknown token."""
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    given = given.strip()
    if not header:
        raise Unauthorized("missing API token: send 'Authorization: Bearer <token>' (the admin "
                           "token, or in a job its AIP_JOB_TOKEN)")
    if scheme.lower() != "bearer" or not given:
        raise Unauthorized("wrong API token: use the admin token or the job's AIP_JOB_TOKEN")
    if hmac.compare_digest(given, request.app.state.token):
        return
    owner = _job_of_token(request, platform, given)
    if owner is None:
        raise Unauthorized("wrong API token: use the admin token or the job's AIP_JOB_TOKEN")
    if owner != job_id:
        raise NotFound(f"no job {job_id!r} for this job token: a job token reaches only its "
                       "own job's metrics, params and artifacts", fields={"job_id": "not this "
                       "token's job"})


router = APIRouter(prefix="/jobs/{job_id}", tags=["tracking"],
                   dependencies=[Depends(authorize_job)])


# -- schemas ------------------------------------------------------------------------------


class MetricPoint(BaseModel):
    key: str = Field(description="1-250 letters, digits, spaces or _-./:")
    step: int = Field(ge=0, le=MAX_STEP)
    value: float | None = Field(description="None (null) for NaN and ±inf")
    time: float | None = Field(default=None, description="UNIX seconds; default: now")
    rank: int = Field(default=0, ge=0, le=MAX_RANK, description="The replica's AIP_RANK")

    @field_validator("key")
    @classmethod
    def _key(cls, key: str) -> str:
        return _checked(key, "metric")


class MetricBatch(BaseModel):
    points: list[MetricPoint] = Field(max_length=MAX_BATCH)


class MetricsWritten(BaseModel):
    count: int


class MetricPublic(BaseModel):
    key: str
    step: int
    value: float | None
    time: float
    rank: int


class MetricList(BaseModel):
    items: list[MetricPublic]


class ParamsBody(BaseModel):
    params: dict[str, str] = Field(description="key -> value (text)")

    @field_validator("params")
    @classmethod
    def _params(cls, params: dict[str, str]) -> dict[str, str]:
        for key, value in params.items():
            _checked(key, "param")
            if len(value) > MAX_PARAM_VALUE_LENGTH:
                raise ValueError(f"param {key!r} is longer than {MAX_PARAM_VALUE_LENGTH} "
                                 "characters")
        return params


class ParamsPublic(BaseModel):
    params: dict[str, str]


class ArtifactPublic(BaseModel):
    path: str  # relative to the job
    key: str  # in the artifact store: jobs/<job id>/<path>
    size: int
    sha256: str
    time: str | None


class ArtifactList(BaseModel):
    items: list[ArtifactPublic]


# -- routes -------------------------------------------------------------------------------


@router.post("/metrics", response_model=MetricsWritten)
def log_metrics(job_id: str, batch: MetricBatch, platform: PlatformDep) -> MetricsWritten:
    """Store a batch of points (at most 10,000); a (key, rank, step) logged again takes the
    new value. Committed before the answer, so a reader right after sees them."""
    points = [tracking_service.Point(key=p.key, step=p.step, value=p.value, time=p.time,
                                     rank=p.rank) for p in batch.points]
    with platform.sessions.begin() as session:
        count = tracking_service.record_metrics(session, job_id, points, platform.clock())
    return MetricsWritten(count=count)


@router.get("/metrics", response_model=MetricList)
def job_metrics(
    job_id: str, session: SessionDep,
    key: Annotated[str | None, Query(description="Only this metric.")] = None,
    replica: Annotated[int | None, Query(ge=0, description="Only the replica of this global "
                                         "rank (its AIP_RANK).")] = None,
) -> MetricList:
    rows = tracking_service.metrics(session, job_id, key=key, rank=replica)
    return MetricList(items=[_metric_public(row) for row in rows])


@router.post("/params", response_model=ParamsPublic)
def log_params(job_id: str, body: ParamsBody, platform: PlatformDep) -> ParamsPublic:
    """Store params (a key logged again takes the new value); returns all of the job's."""
    with platform.sessions.begin() as session:
        tracking_service.record_params(session, job_id, body.params, platform.clock())
        return ParamsPublic(params=tracking_service.params(session, job_id))


@router.get("/params", response_model=ParamsPublic)
def job_params(job_id: str, session: SessionDep) -> ParamsPublic:
    return ParamsPublic(params=tracking_service.params(session, job_id))


@router.post("/artifacts", response_model=ArtifactPublic, openapi_extra={"requestBody": {
    "required": True, "content": {"application/octet-stream": {
        "schema": {"type": "string", "format": "binary"}}}}})
async def upload_artifact(
    job_id: str, request: Request, platform: PlatformDep,
    path: Annotated[str, Query(description="Where under the job: model/weights.pt")],
) -> ArtifactPublic:
    """Stream the request body into the artifact store as ``jobs/<job id>/<path>`` (never
    whole in memory); a path uploaded again is replaced."""
    key = tracking_service.artifact_key(job_id, path)

    def check_job() -> None:  # 404 before reading a byte
        with platform.sessions() as session:
            tracking_service.check_job(session, job_id)

    def record(size: int, sha256: str) -> ArtifactRow:
        with platform.sessions.begin() as session:
            return tracking_service.record_artifact(session, job_id, path, size, sha256,
                                                    platform.clock())

    # the store and the database block: both run in worker threads, off the event loop
    await anyio.to_thread.run_sync(check_job)
    body = cast(BinaryIO, BodyReader(request.stream()))
    info = await anyio.to_thread.run_sync(lambda: platform.artifacts.put_stream(body, key))
    row = await anyio.to_thread.run_sync(record, info.size, info.sha256 or "")
    return _artifact_public(row)


@router.get("/artifacts", response_model=ArtifactList)
def job_artifacts(
    job_id: str, session: SessionDep,
    prefix: Annotated[str | None, Query(description="A path, or a directory of paths.")] = None,
) -> ArtifactList:
    rows = tracking_service.artifacts(session, job_id, prefix=prefix)
    return ArtifactList(items=[_artifact_public(row) for row in rows])


@router.get("/artifacts/{path:path}", response_class=StreamingResponse, responses={200: {
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    "description": "The file; its sha256 (hex) in the X-AIP-SHA256 header."}})
def download_artifact(job_id: str, path: str, platform: PlatformDep) -> StreamingResponse:
    with platform.sessions() as session:
        row = tracking_service.artifact(session, job_id, path)
    stream = platform.artifacts.open(tracking_service.artifact_key(job_id, path))
    name = path.rsplit("/", 1)[-1].replace('"', "")
    headers = {"Content-Length": str(row.size), ARTIFACT_SHA256_HEADER: row.sha256,
               "Content-Disposition": f'attachment; filename="{name}"'}
    return StreamingResponse(chunks(stream), media_type="application/octet-stream",
                             headers=headers)


# -- helpers ------------------------------------------------------------------------------


def _job_of_token(request: Request, platform: Any, token: str) -> str | None:
    """The job of a job token, remembered: a replica reports every second."""
    cache: dict[str, str] | None = getattr(request.app.state, "job_tokens", None)
    if cache is None:
        cache = request.app.state.job_tokens = {}
    digest = tracking_service.token_hash(token)
    owner = cache.get(digest)
    if owner is None:
        with platform.sessions() as session:
            owner = tracking_service.job_of_token(session, token)
        if owner is not None:
            if len(cache) >= TOKEN_CACHE_SIZE:
                cache.clear()
            cache[digest] = owner
    return owner


def _checked(key: str, what: str) -> str:
    try:
        return check_key(key, what)
    except InvalidTrackingData as exc:
        raise ValueError(exc.message) from None


def _metric_public(row: MetricRow) -> MetricPublic:
    return MetricPublic(key=row.key, step=row.step, value=row.value, time=row.time,
                        rank=row.rank)


def _artifact_public(row: ArtifactRow) -> ArtifactPublic:
    return ArtifactPublic(path=row.path, key=f"{tracking_service.ARTIFACT_PREFIX}/{row.job_id}/"
                          f"{row.path}", size=row.size, sha256=row.sha256, time=iso(row.time))
