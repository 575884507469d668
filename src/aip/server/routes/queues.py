"""Queue routes: create, list, get — with usage against quota."""

from __future__ import annotations

from fastapi import APIRouter, Request

from aip.control import queues as queue_service
from aip.control.usage import job_counts_by_queue, queue_usages
from aip.server.bodies import body_schema, parse_body
from aip.server.deps import PlatformDep, SessionDep
from aip.server.schemas import QueueList, QueuePublic, queue_public
from aip.spec import QueueSpec

router = APIRouter(prefix="/queues", tags=["queues"])


@router.get("", response_model=QueueList)
def list_queues(session: SessionDep, platform: PlatformDep) -> QueueList:
    usage = queue_usages(session, list(platform.nodes()))
    counts = job_counts_by_queue(session)
    return QueueList(items=[
        queue_public(spec, usage.get(spec.name, {}), counts[spec.name]["PENDING"],
                     counts[spec.name]["RUNNING"] + counts[spec.name]["ADMITTED"])
        for spec in queue_service.list_all(session)])


@router.post("", status_code=201, response_model=QueuePublic,
             openapi_extra=body_schema(QueueSpec))
async def create_queue(request: Request, platform: PlatformDep) -> QueuePublic:
    spec = await parse_body(request, QueueSpec, "queue spec")
    with platform.sessions.begin() as session:
        queue_service.create(session, spec, platform.clock())
    platform.reconciler.wake()
    return queue_public(spec, {}, 0, 0)


@router.get("/{name}", response_model=QueuePublic)
def get_queue(name: str, session: SessionDep, platform: PlatformDep) -> QueuePublic:
    spec = queue_service.get(session, name)
    usage = queue_usages(session, list(platform.nodes())).get(name, {})
    counts = job_counts_by_queue(session)[name]
    return queue_public(spec, usage, counts["PENDING"], counts["RUNNING"] + counts["ADMITTED"])
