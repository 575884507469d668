"""Model registry routes. All take the admin token: registering a model stores files that
serving later loads, and unpickling runs code, so a job token opens none of them.

    POST   /models/{name}/versions                 register: a tar of the model directory
           (Content-Type: application/x-tar, gzip accepted), or one file
           (application/octet-stream with ?filename=), streamed into the artifact store;
           or JSON {"source_job", "artifact"} to register a job's artifact
    GET    /models                                 models, with latest version and aliases
    GET    /models/resolve?uri=models:/m@production
    GET    /models/{name}                          a model and its versions
    GET    /models/{name}/versions/{version}       one version: signature, files, lineage
    GET    /models/{name}/versions/{version}/files             the whole tree as a tar
    GET    /models/{name}/versions/{version}/files/{path}      one file
    PUT    /models/{name}/aliases/{alias}          {"version": 3}
    DELETE /models/{name}/aliases/{alias}
"""

from __future__ import annotations

import json
from typing import IO, Annotated, Any, cast

import anyio
import anyio.from_thread
import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from aip.control import registry as registry_service
from aip.control.registry import Registration, Registry
from aip.errors import InvalidSpec
from aip.registry.flavors import signature_from_json
from aip.registry.uris import ModelRef, parse_model_uri
from aip.server.auth import require_token
from aip.server.bodies import parse_body
from aip.server.deps import PlatformDep, SessionDep
from aip.server.schemas import iso
from aip.server.streams import BodyReader, chunks
from aip.spec.model import Signature
from aip.store.registry_tables import ModelRow, ModelVersionRow

SHA256_HEADER = "X-AIP-SHA256"
TREE_SHA256_HEADER = "X-AIP-Tree-SHA256"
ARCHIVE_TYPES = ("application/x-tar", "application/tar", "application/gzip",
                 "application/x-gzip", "application/x-gtar")
ADMIN = "admin"  # the only principal that reaches these routes

# The admin token, even if the API router around this one someday admits job tokens.
router = APIRouter(prefix="/models", tags=["models"], dependencies=[Depends(require_token)])


# -- schemas ------------------------------------------------------------------------------


class FilePublic(BaseModel):
    path: str
    size: int
    sha256: str


class ModelVersionSummary(BaseModel):
    name: str
    version: int
    uri: str = Field(description="models:/name/version")
    state: str = Field(description="pending while its files are written, then ready")
    flavor: str | None
    size: int
    sha256: str | None = Field(description="Digest of the file index: the content address.")
    aliases: list[str]
    source_job: str | None
    created_at: str


class ModelVersionPublic(ModelVersionSummary):
    signature: Signature | None
    manifest: dict[str, Any] | None = Field(description="The version's aip-model.json.")
    storage_prefix: str = Field(description="Where its files are in the artifact store.")
    files: list[FilePublic]
    source_artifact: str | None
    metrics: dict[str, float | None] | None = Field(
        description="The source job's latest metrics when the version was registered.")
    created_by: str | None


class ModelPublic(BaseModel):
    name: str
    description: str | None
    latest_version: int | None
    version_count: int
    aliases: dict[str, int] = Field(description="alias -> version")
    created_at: str
    updated_at: str


class ModelDetail(ModelPublic):
    versions: list[ModelVersionSummary] = Field(description="Newest first.")


class ModelPage(BaseModel):
    items: list[ModelPublic]
    total: int
    limit: int
    offset: int


class RegisterFromJob(BaseModel):
    """Register an artifact a job logged (a file, or a directory of files)."""

    source_job: str
    artifact: str = Field(description="The artifact's path in the job: model.onnx, model/")
    flavor: str | None = None
    signature: Signature | None = None
    python_class: str | None = None
    description: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class AliasBody(BaseModel):
    version: int = Field(ge=1)


class AliasPublic(BaseModel):
    name: str
    alias: str
    version: int
    uri: str
    updated_at: str


class ModelRemoved(BaseModel):
    name: str
    removed_versions: int


_REGISTER_BODY = {"requestBody": {"required": True, "content": {
    "application/x-tar": {"schema": {"type": "string", "format": "binary"}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    "application/json": {"schema": RegisterFromJob.model_json_schema(
        ref_template="#/components/schemas/{model}")},
}}}


# -- routes -------------------------------------------------------------------------------


@router.post("/{name}/versions", status_code=201, response_model=ModelVersionPublic,
             openapi_extra=_REGISTER_BODY)
async def register_version(
    name: str, request: Request, platform: PlatformDep,
    flavor: Annotated[str | None, Query(description="onnx, pytorch, sklearn, xgboost, "
                                        "lightgbm, tensorflow or python")] = None,
    signature: Annotated[str | None, Query(description="JSON {inputs, outputs}")] = None,
    python_class: Annotated[str | None, Query(description="python flavor: module:Class")] = None,
    source_job: Annotated[str | None, Query(description="The job that made the model.")] = None,
    description: Annotated[str | None, Query(description="The model's description.")] = None,
    filename: Annotated[str | None, Query(description="The body is this one file.")] = None,
) -> ModelVersionPublic:
    """Register a new version (numbered from 1 per model). Blocks until the files are stored."""
    registry = Registry(platform.sessions, platform.artifacts, platform.clock)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        body = await parse_body(request, RegisterFromJob, "registration")
        registration = Registration(
            name, flavor=body.flavor or flavor, signature=body.signature,
            python_class=body.python_class, description=body.description,
            source_job=body.source_job, metadata=body.metadata, created_by=ADMIN)
        row = await anyio.to_thread.run_sync(registry.register_from_job, registration,
                                             body.artifact)
    else:
        reader = BodyReader(request.stream())
        try:
            registration = Registration(
                name, flavor=flavor, python_class=python_class, description=description,
                source_job=source_job, created_by=ADMIN,
                signature=signature_from_json(signature) if signature else None)
            archive = content_type in ARCHIVE_TYPES
            if not archive and filename is None:
                raise InvalidSpec("send a tar of the model directory (Content-Type: "
                                  "application/x-tar), or one file with ?filename=NAME",
                                  fields={"filename": "required for a single file"})
            row = await anyio.to_thread.run_sync(
                lambda: registry.register_upload(registration, cast(IO[bytes], reader),
                                                 filename=None if archive else filename))
        except BaseException:
            await anyio.to_thread.run_sync(reader.drain)  # so the client reads our answer
            raise
    with platform.sessions() as session:
        return _version_public(row, registry_service.aliases_of(session, [name])[name])


@router.get("", response_model=ModelPage)
def list_models(
    session: SessionDep,
    name: Annotated[str | None, Query(description="Text in the model's name.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ModelPage:
    rows, total = registry_service.list_models(session, name, limit, offset)
    names = [row.name for row in rows]
    versions = registry_service.versions_of(session, names)
    aliases = registry_service.aliases_of(session, names)
    return ModelPage(items=[_model_public(row, versions[row.name], aliases[row.name])
                            for row in rows], total=total, limit=limit, offset=offset)


@router.get("/resolve", response_model=ModelVersionPublic)
def resolve_model(
    session: SessionDep,
    uri: Annotated[str, Query(description="models:/name@alias, models:/name/3 or "
                              "models:/name (the newest)")],
) -> ModelVersionPublic:
    row = registry_service.resolve(session, parse_model_uri(uri))
    return _version_public(row, registry_service.aliases_of(session, [row.name])[row.name])


@router.get("/{name}", response_model=ModelDetail)
def get_model(name: str, session: SessionDep) -> ModelDetail:
    row = registry_service.get_model(session, name)
    versions = registry_service.versions_of(session, [name])[name]
    aliases = registry_service.aliases_of(session, [name])[name]
    public = _model_public(row, versions, aliases)
    return ModelDetail(**public.model_dump(),
                       versions=[_version_summary(v, aliases) for v in versions])


def version_details(session: Session, name: str, limit: int) -> list[ModelVersionPublic]:
    """The model's first ``limit`` versions in full, in ``get_model``'s order, from two
    queries (the console's model page)."""
    versions = registry_service.versions_of(session, [name])[name][:limit]
    aliases = registry_service.aliases_of(session, [name])[name]
    return [_version_public(row, aliases) for row in versions]


@router.get("/{name}/versions/{version}", response_model=ModelVersionPublic)
def get_version(name: str, version: int, session: SessionDep) -> ModelVersionPublic:
    row = registry_service.resolve(session, ModelRef(name, version=version))
    return _version_public(row, registry_service.aliases_of(session, [name])[name])


@router.get("/{name}/versions/{version}/files", response_class=StreamingResponse,
            responses={200: {"content": {"application/x-tar": {"schema": {
                "type": "string", "format": "binary"}}},
                "description": "The model directory as a tar; each file's sha256 is in the "
                               "version's file list."}})
def download_version(name: str, version: int, platform: PlatformDep) -> StreamingResponse:
    with platform.sessions() as session:
        row = registry_service.resolve(session, ModelRef(name, version=version))
    stream = Registry(platform.sessions, platform.artifacts, platform.clock).archive(row)
    headers = {"Content-Length": str(stream.size), TREE_SHA256_HEADER: row.sha256 or "",
               "Content-Disposition": f'attachment; filename="{name}-{version}.tar"'}
    return StreamingResponse(iter(stream), media_type="application/x-tar", headers=headers)


@router.get("/{name}/versions/{version}/files/{path:path}", response_class=StreamingResponse,
            responses={200: {"content": {"application/octet-stream": {"schema": {
                "type": "string", "format": "binary"}}},
                "description": "The file; its sha256 (hex) in the X-AIP-SHA256 header."}})
def download_file(name: str, version: int, path: str, platform: PlatformDep
                  ) -> StreamingResponse:
    with platform.sessions() as session:
        row = registry_service.resolve(session, ModelRef(name, version=version))
    registry = Registry(platform.sessions, platform.artifacts, platform.clock)
    stream, entry = registry.open_file(row, path)
    filename = path.rsplit("/", 1)[-1].replace('"', "")
    headers = {"Content-Length": str(entry.size), SHA256_HEADER: entry.sha256,
               "Content-Disposition": f'attachment; filename="{filename}"'}
    return StreamingResponse(chunks(stream), media_type="application/octet-stream",
                             headers=headers)


@router.put("/{name}/aliases/{alias}", response_model=AliasPublic)
def set_alias(name: str, alias: str, body: AliasBody, platform: PlatformDep) -> AliasPublic:
    """Point the alias at a version, moving it if it pointed at another. Committed before
    the answer: a deploy right after resolves the alias."""
    with platform.sessions.begin() as session:
        row = registry_service.set_alias(session, name, alias, body.version, platform.clock())
    return AliasPublic(name=name, alias=alias, version=row.version,
                       uri=str(ModelRef(name, alias=alias)), updated_at=iso(row.updated_at) or "")


@router.delete("/{name}/aliases/{alias}", status_code=204, response_class=Response)
def delete_alias(name: str, alias: str, platform: PlatformDep) -> Response:
    with platform.sessions.begin() as session:
        registry_service.delete_alias(session, name, alias)
    return Response(status_code=204)


@router.delete("/{name}/versions/{version}", status_code=204, response_class=Response)
def delete_version(name: str, version: int, platform: PlatformDep) -> Response:
    """Remove a version and its files. Refused (409) while an alias points at it, an
    endpoint serves it or a replica runs it."""
    from aip.control.model_removal import remove_version

    remove_version(platform.sessions, platform.artifacts, name, version)
    return Response(status_code=204)


@router.delete("/{name}", response_model=ModelRemoved)
def delete_model(name: str, platform: PlatformDep) -> ModelRemoved:
    """Remove a model, its aliases and every version with its files. Refused (409) while an
    endpoint serves or a replica runs one of its versions."""
    from aip.control.model_removal import remove_model

    removed = remove_model(platform.sessions, platform.artifacts, name)
    return ModelRemoved(name=name, removed_versions=removed)


# -- helpers ------------------------------------------------------------------------------


def _model_public(row: ModelRow, versions: list[ModelVersionRow],
                  aliases: dict[str, int]) -> ModelPublic:
    ready = [v.version for v in versions if v.state == "ready"]
    return ModelPublic(name=row.name, description=row.description,
                       latest_version=max(ready) if ready else None, version_count=len(ready),
                       aliases=aliases, created_at=iso(row.created_at) or "",
                       updated_at=iso(row.updated_at) or "")


def _version_summary(row: ModelVersionRow, aliases: dict[str, int]) -> ModelVersionSummary:
    return ModelVersionSummary(**_summary_fields(row, aliases))


def _version_public(row: ModelVersionRow, aliases: dict[str, int]) -> ModelVersionPublic:
    return ModelVersionPublic(
        **_summary_fields(row, aliases),
        signature=Signature.model_validate_json(row.signature) if row.signature else None,
        manifest=json.loads(row.manifest) if row.manifest else None,
        storage_prefix=row.storage_prefix,
        files=[FilePublic(**entry.to_json()) for entry in registry_service.files_of(row)],
        source_artifact=row.source_artifact,
        metrics=json.loads(row.metrics) if row.metrics else None, created_by=row.created_by)


def _summary_fields(row: ModelVersionRow, aliases: dict[str, int]) -> dict[str, Any]:
    return {"name": row.name, "version": row.version,
            "uri": str(ModelRef(row.name, version=row.version)), "state": row.state,
            "flavor": row.flavor, "size": row.size, "sha256": row.sha256,
            "aliases": sorted(alias for alias, v in aliases.items() if v == row.version),
            "source_job": row.source_job, "created_at": iso(row.created_at) or ""}
