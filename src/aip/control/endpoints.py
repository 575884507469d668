"""Endpoint services: deploy (create or roll to new versions), list, get, delete, tokens.

Deploying resolves every version's ``models:/`` URI to a ready registry version now, so an
alias that moves later changes nothing until the next deploy. Each deploy bumps the revision;
the endpoint controller (``aip.control.endpoint_controller``) then rolls the replicas.
A token is made at creation (and by ``rotate_token``) and returned once; only its hash is kept.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from aip.control import registry as registry_service
from aip.errors import Conflict, NotFound
from aip.registry.uris import ModelRef, parse_model_uri
from aip.spec.endpoint import EndpointSpec
from aip.store.endpoint_tables import EndpointRow
from aip.store.registry_tables import ModelVersionRow

ACTIVE, DELETING = "ACTIVE", "DELETING"
ENDPOINT_LABEL = "aip.io/endpoint"
VERSION_LABEL = "aip.io/endpoint-version"


@dataclass(frozen=True)
class Deployed:
    row: EndpointRow
    token: str | None  # only when a token was made now


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def version_label(row: ModelVersionRow) -> str:
    """How a served version is named in the router, metrics and job labels: "iris-3"."""
    return f"{row.name}-{row.version}"


def version_for_replicas(row: ModelVersionRow) -> dict[str, Any]:
    """What a replica needs to fetch and verify the version's files."""
    return {"uri": str(ModelRef(row.name, version=row.version)), "name": row.name,
            "version": row.version, "flavor": row.flavor, "sha256": row.sha256,
            "storage_prefix": row.storage_prefix,
            "files": [entry.to_json() for entry in registry_service.files_of(row)]}


def deploy(session: Session, spec: EndpointSpec, now: float) -> Deployed:
    """Create the endpoint, or move it to ``spec`` (a rolling update)."""
    resolved: dict[str, dict[str, Any]] = {}
    for index, version in enumerate(spec.versions):
        row = registry_service.resolve(session, parse_model_uri(
            version.model, field=f"versions.{index}.model"))
        label = version_label(row)
        if label in resolved:
            raise Conflict(f"versions {version.model!r} and another one are both {label}: "
                           "give each version a different model version",
                           fields={f"versions.{index}.model": "the same version twice"})
        resolved[label] = {**version_for_replicas(row), "weight": version.weight,
                           "shadow_percent": version.shadow_percent}
    existing = session.get(EndpointRow, spec.name)
    if existing is not None and existing.state == DELETING:
        raise Conflict(f"endpoint {spec.name} is being deleted; deploy again once it is gone",
                       fields={"name": "being deleted"})
    token = None
    if existing is None:
        token = secrets.token_urlsafe(24)
        existing = EndpointRow(name=spec.name, spec="", versions="",
                               token_hashes=json.dumps([token_hash(token)]), state=ACTIVE,
                               revision=0, replicas=spec.min_replicas, created_at=now,
                               updated_at=now)
        session.add(existing)
    existing.spec = spec.model_dump_json()
    existing.versions = json.dumps(resolved)
    existing.revision += 1
    existing.updated_at = now
    existing.reason = f"revision {existing.revision} deployed"
    return Deployed(existing, token)


def get(session: Session, name: str) -> EndpointRow:
    row = session.get(EndpointRow, name)
    if row is None:
        raise NotFound(f"no endpoint {name!r}: list them with `aip endpoint list`",
                       fields={"name": "unknown endpoint"})
    return row


def list_all(session: Session) -> list[EndpointRow]:
    return list(session.scalars(select(EndpointRow).order_by(EndpointRow.name)))


def request_delete(session: Session, name: str, now: float) -> EndpointRow:
    """Mark it; the controller stops its replicas and then removes the row."""
    row = get(session, name)
    row.state = DELETING
    row.updated_at = now
    row.reason = "deleting: stopping its replicas"
    return row


def rotate_token(session: Session, name: str, now: float, *, keep_old: bool = False) -> str:
    row = get(session, name)
    token = secrets.token_urlsafe(24)
    hashes = json.loads(row.token_hashes) if keep_old else []
    row.token_hashes = json.dumps([*hashes, token_hash(token)])
    row.updated_at = now
    return token


def spec_of(row: EndpointRow) -> EndpointSpec:
    return EndpointSpec.model_validate_json(row.spec)
