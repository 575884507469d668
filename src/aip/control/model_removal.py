"""Removing model versions, and finishing what a crash interrupted.

    remove_version(sessions, store, "fraud", 3, now)   # refuses while anything uses it
    remove_model(sessions, store, "fraud", now)        # every version, then the model
    recover(sessions, store)                           # at start: pending and removing rows

A version in use cannot be removed: an alias points at it (move or delete the alias), an
endpoint serves it (deploy another version or delete the endpoint), or a live replica job
still runs it (it may restart and fetch the files again). Removal happens in two steps so
that a crash in between loses nothing that matters: the row turns ``removing`` (it no longer
resolves, lists as latest or takes aliases), then its files leave the artifact store and the
row goes. ``recover`` at start-up deletes what the last run left half done: ``removing`` rows
and ``pending`` ones (registrations the crash interrupted, whose uploads will never finish).
"""

from __future__ import annotations

import json
import logging

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from aip.control import endpoints as endpoint_service
from aip.control.registry import version_prefix
from aip.control.states import FINAL_STATES, JobState
from aip.errors import Conflict, NotFound
from aip.storage import ArtifactStore
from aip.store.endpoint_tables import EndpointRow
from aip.store.registry_tables import (
    PENDING,
    READY,
    REMOVING,
    ModelAliasRow,
    ModelRow,
    ModelVersionRow,
)
from aip.store.tables import JobRow

log = logging.getLogger("aip.registry")
LIVE_JOB_STATES = tuple(s for s in JobState if s not in FINAL_STATES)


def remove_version(sessions: sessionmaker[Session], store: ArtifactStore, name: str,
                   version: int) -> None:
    """Remove one ready version and its files; ``Conflict`` naming the user while in use."""
    with sessions.begin() as session:
        row = session.get(ModelVersionRow, (name, version))
        if row is None or row.state == PENDING:
            raise NotFound(f"model {name!r} has no version {version}: `aip model get {name}` "
                           "lists its versions", fields={"version": "not found"})
        if row.state == READY:
            _refuse_if_used(session, name, [version])
            row.state = REMOVING
    _delete_files(sessions, store, name, version)


def remove_model(sessions: sessionmaker[Session], store: ArtifactStore, name: str) -> int:
    """Remove a model with all its versions; returns how many versions went."""
    with sessions.begin() as session:
        model = session.get(ModelRow, name)
        if model is None:
            raise NotFound(f"no model {name!r}: `aip model list` shows the models",
                           fields={"name": "not found"})
        rows = list(session.scalars(select(ModelVersionRow).where(
            ModelVersionRow.name == name)))
        if any(row.state == PENDING for row in rows):
            raise Conflict(f"model {name!r} has a registration in progress; try again when it "
                           "is done", fields={"name": "busy"})
        _refuse_if_used(session, name, [row.version for row in rows], aliases=False)
        for row in rows:
            row.state = REMOVING
    for row in rows:
        _delete_files(sessions, store, name, row.version)
    with sessions.begin() as session:
        model = session.get(ModelRow, name)
        if model is not None:
            session.delete(model)  # aliases go with it (ON DELETE CASCADE)
    return len(rows)


def recover(sessions: sessionmaker[Session], store: ArtifactStore) -> int:
    """Delete the versions a crash left pending or half removed; returns how many."""
    with sessions() as session:
        stale = [(row.name, row.version) for row in session.scalars(select(ModelVersionRow)
                 .where(ModelVersionRow.state.in_((PENDING, REMOVING))))]
    for name, version in stale:
        log.warning("removing model %s version %s, left unfinished by the last run",
                    name, version)
        _delete_files(sessions, store, name, version)
    with sessions.begin() as session:  # a first registration that never finished
        for name in {name for name, _ in stale}:
            model = session.get(ModelRow, name)
            if model is not None and session.scalar(select(ModelVersionRow.version).where(
                    ModelVersionRow.name == name).limit(1)) is None:
                session.delete(model)
    return len(stale)


# -- helpers, in call order --------------------------------------------------------------

def _refuse_if_used(session: Session, name: str, versions: list[int], *,
                    aliases: bool = True) -> None:
    wanted = set(versions)
    if aliases:
        for alias in session.scalars(select(ModelAliasRow).where(ModelAliasRow.name == name)):
            if alias.version in wanted:
                raise Conflict(f"model {name} version {alias.version} is aliased "
                               f"{alias.alias!r}: point the alias elsewhere (`aip model alias "
                               f"{name} {alias.alias} VERSION`) or delete it first",
                               fields={"version": f"aliased {alias.alias}"})
    for endpoint in session.scalars(select(EndpointRow)):
        for served in json.loads(endpoint.versions).values():
            if served.get("name") == name and served.get("version") in wanted:
                raise Conflict(f"model {name} version {served['version']} is served by "
                               f"endpoint {endpoint.name!r}: deploy another version there or "
                               f"delete the endpoint first",
                               fields={"version": f"served by {endpoint.name}"})
    labels = {f"{name}-{version}" for version in wanted}
    for job in session.scalars(select(JobRow).where(
            JobRow.state.in_(LIVE_JOB_STATES),
            JobRow.labels.contains(endpoint_service.VERSION_LABEL))):
        label = json.loads(job.labels).get(endpoint_service.VERSION_LABEL)
        if label in labels:
            raise Conflict(f"model {name}: replica job {job.id} still runs {label}; wait for "
                           "it to stop", fields={"version": f"running in {job.id}"})


def _delete_files(sessions: sessionmaker[Session], store: ArtifactStore, name: str,
                  version: int) -> None:
    store.delete(version_prefix(name, version))  # first: a crash here leaves the row to retry
    with sessions.begin() as session:
        row = session.get(ModelVersionRow, (name, version))
        if row is not None:
            session.delete(row)
