"""Endpoint routes: deploy (create or roll out), list, get, delete, rotate the token."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from aip.control import endpoints as endpoint_service
from aip.server.bodies import body_schema, parse_body
from aip.server.deps import PlatformDep, SessionDep
from aip.server.schemas import iso
from aip.spec.endpoint import EndpointSpec
from aip.store.endpoint_tables import EndpointRow

router = APIRouter(prefix="/endpoints", tags=["endpoints"])


class VersionPublic(BaseModel):
    label: str
    uri: str
    flavor: str | None
    weight: float
    shadow_percent: float
    ready_replicas: int


class EndpointReplica(BaseModel):
    job_id: str
    version: str
    state: str  # starting | ready | draining
    url: str | None


class EndpointPublic(BaseModel):
    name: str
    state: str
    revision: int
    url: str  # through the router
    replicas: int  # what the autoscaler wants now
    reason: str | None
    versions: list[VersionPublic]
    replica_list: list[EndpointReplica]
    spec: dict[str, Any]
    created_at: str
    updated_at: str


class EndpointList(BaseModel):
    items: list[EndpointPublic]


class Deployment(BaseModel):
    endpoint: EndpointPublic
    token: str | None  # only when one was made now: keep it, it is not shown again


class TokenBody(BaseModel):
    token: str


@router.post("", response_model=Deployment, openapi_extra=body_schema(EndpointSpec))
async def deploy(request: Request, response: Response, platform: PlatformDep) -> Deployment:
    spec = await parse_body(request, EndpointSpec, "endpoint spec")
    with platform.sessions.begin() as session:
        deployed = endpoint_service.deploy(session, spec, platform.clock())
        public = _public(session, deployed.row, platform)
    if deployed.token is not None:
        response.status_code = 201
    platform.endpoints.wake()
    return Deployment(endpoint=public, token=deployed.token)


@router.get("", response_model=EndpointList)
def list_endpoints(session: SessionDep, platform: PlatformDep) -> EndpointList:
    return EndpointList(items=[_public(session, row, platform)
                               for row in endpoint_service.list_all(session)])


@router.get("/{name}", response_model=EndpointPublic)
def get_endpoint(name: str, session: SessionDep, platform: PlatformDep) -> EndpointPublic:
    return _public(session, endpoint_service.get(session, name), platform)


@router.delete("/{name}", status_code=202, response_model=EndpointPublic)
def delete_endpoint(name: str, platform: PlatformDep) -> EndpointPublic:
    with platform.sessions.begin() as session:
        row = endpoint_service.request_delete(session, name, platform.clock())
        public = _public(session, row, platform)
    platform.endpoints.wake()
    return public


@router.post("/{name}/token", response_model=TokenBody)
def rotate_token(name: str, platform: PlatformDep) -> TokenBody:
    with platform.sessions.begin() as session:
        token = endpoint_service.rotate_token(session, name, platform.clock())
    platform.endpoints.wake()
    return TokenBody(token=token)


def _public(session: Session, row: EndpointRow, platform: Any) -> EndpointPublic:
    versions: dict[str, dict[str, Any]] = json.loads(row.versions)
    controller = platform.endpoints
    replicas = [EndpointReplica(job_id=job.job_id, version=job.version,
                                state=controller.view_state(job), url=job.url)
                for job in controller.replica_jobs(row.name)]
    return EndpointPublic(
        name=row.name, state=row.state, revision=row.revision,
        url=f"{platform.router.url}/endpoints/{row.name}", replicas=row.replicas,
        reason=row.reason, spec=json.loads(row.spec), replica_list=replicas,
        versions=[VersionPublic(
            label=label, uri=v["uri"], flavor=v.get("flavor"), weight=v["weight"],
            shadow_percent=v["shadow_percent"],
            ready_replicas=sum(1 for r in replicas if r.version == label and r.state == "ready"))
            for label, v in versions.items()],
        created_at=iso(row.created_at) or "", updated_at=iso(row.updated_at) or "")
