"""Tracking services: storing what jobs log (metrics, params, artifact records) and the
job-scoped tokens replicas report with. Each function works on one store session.

Job tokens: every launch of a job's replicas draws a random token (``secrets``), stores only
its SHA-256 and hands the token to the replicas as ``AIP_JOB_TOKEN``. A job token opens that
job's tracking routes and nothing else; the admin token opens everything.

Artifacts live in the artifact store under ``jobs/<job id>/<path>``; this module keeps their
rows (size, sha256) and checks paths, the routes stream the bytes.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from aip.control import jobs as job_service
from aip.errors import InvalidSpec, NotFound
from aip.storage.keys import key_problem
from aip.store.tracking_tables import ArtifactRow, JobTokenRow, MetricRow, ParamRow

ARTIFACT_PREFIX = "jobs"
JOB_TOKEN_VARIABLE = "AIP_JOB_TOKEN"


@dataclass(frozen=True)
class Point:
    """One metric value as the API receives it."""

    key: str
    step: int
    value: float | None
    time: float | None = None
    rank: int = 0


# -- job tokens ---------------------------------------------------------------------------


def job_token_environment(session: Session, job_id: str, now: float) -> dict[str, str]:
    """``{"AIP_JOB_TOKEN": token}`` for replicas being launched: a fresh token of the job."""
    return {JOB_TOKEN_VARIABLE: issue_job_token(session, job_id, now)}


def issue_job_token(session: Session, job_id: str, now: float) -> str:
    """A new random token for ``job_id``; the store keeps only its hash."""
    token = secrets.token_urlsafe(32)
    session.add(JobTokenRow(token_hash=token_hash(token), job_id=job_id, created_at=now))
    return token


def job_of_token(session: Session, token: str) -> str | None:
    """The job a job token belongs to, or None if it is no job's token."""
    return session.scalar(
        select(JobTokenRow.job_id).where(JobTokenRow.token_hash == token_hash(token)))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# -- metrics and params -------------------------------------------------------------------


def record_metrics(session: Session, job_id: str, points: Iterable[Point], now: float) -> int:
    """Store points, replacing the value of a (key, rank, step) logged before. Returns how
    many distinct points the batch held. NaN and ±inf are stored as None."""
    job_service.get(session, job_id)
    rows: dict[tuple[str, int, int], dict[str, object]] = {}
    for point in points:
        value = point.value if point.value is None or math.isfinite(point.value) else None
        rows[(point.key, point.rank, point.step)] = {
            "job_id": job_id, "key": point.key, "rank": point.rank, "step": point.step,
            "value": value, "time": now if point.time is None else point.time}
    if rows:
        _upsert(session, MetricRow, list(rows.values()),
                keys=("job_id", "key", "rank", "step"), update=("value", "time"))
    return len(rows)


def metrics(session: Session, job_id: str, key: str | None = None,
            rank: int | None = None) -> list[MetricRow]:
    """A job's points ordered by key, rank and step; optionally of one key or one rank."""
    job_service.get(session, job_id)
    query = select(MetricRow).where(MetricRow.job_id == job_id)
    if key is not None:
        query = query.where(MetricRow.key == key)
    if rank is not None:
        query = query.where(MetricRow.rank == rank)
    return list(session.scalars(
        query.order_by(MetricRow.key, MetricRow.rank, MetricRow.step)).all())


def record_params(session: Session, job_id: str, params: Mapping[str, str],
                  now: float) -> None:
    """Store params; a key logged again takes the new value."""
    job_service.get(session, job_id)
    if params:
        _upsert(session, ParamRow, [
            {"job_id": job_id, "key": key, "value": value, "time": now}
            for key, value in params.items()], keys=("job_id", "key"), update=("value", "time"))


def params(session: Session, job_id: str) -> dict[str, str]:
    job_service.get(session, job_id)
    rows = session.execute(select(ParamRow.key, ParamRow.value).where(
        ParamRow.job_id == job_id).order_by(ParamRow.key))
    return {key: value for key, value in rows}


# -- artifacts ----------------------------------------------------------------------------


def artifact_key(job_id: str, path: str) -> str:
    """Where a job's artifact lives in the artifact store: ``jobs/<job id>/<path>``."""
    check_artifact_path(path)
    key = f"{ARTIFACT_PREFIX}/{job_id}/{path}"
    problem = key_problem(key)
    if problem:
        raise InvalidSpec(f"invalid artifact path {path!r}: {problem}", fields={"path": problem})
    return key


def check_artifact_path(path: str) -> str:
    """A relative path of names joined by '/', without '.' or '..' names (the store's key
    rules, ``aip.storage.keys``)."""
    problem = key_problem(path)
    if problem:
        raise InvalidSpec(f"invalid artifact path {path!r}: {problem}", fields={"path": problem})
    return path


def check_job(session: Session, job_id: str) -> None:
    """NotFound unless the job exists."""
    job_service.get(session, job_id)


def record_artifact(session: Session, job_id: str, path: str, size: int, sha256: str,
                    now: float) -> ArtifactRow:
    """Record a stored artifact file (a path uploaded again replaces the record)."""
    job_service.get(session, job_id)
    _upsert(session, ArtifactRow, [{"job_id": job_id, "path": path, "size": size,
                                    "sha256": sha256, "time": now}],
            keys=("job_id", "path"), update=("size", "sha256", "time"))
    return ArtifactRow(job_id=job_id, path=path, size=size, sha256=sha256, time=now)


def artifacts(session: Session, job_id: str, prefix: str | None = None) -> list[ArtifactRow]:
    """A job's artifact files by path; with ``prefix``, the file of that path or those in
    that directory."""
    job_service.get(session, job_id)
    query = select(ArtifactRow).where(ArtifactRow.job_id == job_id)
    rows = session.scalars(query.order_by(ArtifactRow.path)).all()
    if not prefix:
        return list(rows)
    directory = prefix.rstrip("/") + "/"
    return [row for row in rows if row.path == prefix or row.path.startswith(directory)]


def artifact(session: Session, job_id: str, path: str) -> ArtifactRow:
    job_service.get(session, job_id)
    row = session.get(ArtifactRow, (job_id, path))
    if row is None:
        raise NotFound(f"job {job_id} has no artifact {path!r}: list them with "
                       f"`aip job artifacts {job_id}`", fields={"path": "unknown artifact"})
    return row


# -- helpers ------------------------------------------------------------------------------


def _upsert(session: Session, table: type[object], rows: list[dict[str, object]], *,
            keys: tuple[str, ...], update: tuple[str, ...]) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE, in the dialect of the session's database
    (SQLite and PostgreSQL both have it)."""
    from sqlalchemy.dialects import postgresql, sqlite

    # the Core table, not the ORM class: a plain executemany, without per-row ORM work
    core = table.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    statement = postgresql.insert(core) if dialect == "postgresql" else sqlite.insert(core)
    upsert = statement.on_conflict_do_update(
        index_elements=list(keys), set_={name: statement.excluded[name] for name in update})
    session.execute(upsert, rows)

