"""Tracking services over a real store (SQLite; PostgreSQL when one answers): metric upserts,
params, artifact records and paths, job tokens kept as hashes."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session, sessionmaker

from aip.control import jobs as job_service
from aip.control import tracking
from aip.control.tracking import Point
from aip.errors import InvalidSpec, NotFound
from aip.scheduler import Node
from aip.spec import JobSpec
from aip.store.db import make_engine, migrate
from aip.store.tracking_tables import JobTokenRow
from aip.testing.store import migrated_sessions

NODES = [Node(name="n1", cpu_milli=8000, memory_bytes=32 * 2**30)]


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    with migrated_sessions(database_url) as factory:
        yield factory


def new_job(sessions: sessionmaker[Session], name: str = "train") -> str:
    spec = JobSpec.model_validate({"name": name, "command": ["python", "-c", "pass"]})
    with sessions.begin() as session:
        return job_service.submit(session, spec, NODES, 1.0).id


def test_migration_0003_creates_the_tracking_tables(database_url: str) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    assert {"metrics", "params", "artifacts", "job_tokens"} <= set(
        inspect(engine).get_table_names())
    engine.dispose()


def test_a_step_logged_again_takes_the_new_value(sessions: sessionmaker[Session]) -> None:
    job = new_job(sessions)
    with sessions.begin() as session:
        assert tracking.record_metrics(session, job, [
            Point("loss", 0, 1.0, time=10.0), Point("loss", 1, 0.8, time=11.0),
            Point("loss", 1, 0.7, time=12.0)], now=50.0) == 2, "the batch's last value wins"
    with sessions.begin() as session:
        tracking.record_metrics(session, job, [Point("loss", 0, 0.9)], now=60.0)
    with sessions() as session:
        rows = tracking.metrics(session, job)
        assert [(r.step, r.value, r.time) for r in rows] == [(0, 0.9, 60.0), (1, 0.7, 12.0)]


def test_points_are_filtered_by_key_and_rank_and_ordered(sessions: sessionmaker[Session]
                                                         ) -> None:
    job = new_job(sessions)
    with sessions.begin() as session:
        tracking.record_metrics(session, job, [
            Point("loss", 1, 0.5, rank=1), Point("loss", 0, 1.0, rank=1),
            Point("acc", 0, 0.1), Point("loss", 0, 1.1)], now=1.0)
    with sessions() as session:
        assert [(r.key, r.rank, r.step) for r in tracking.metrics(session, job)] == [
            ("acc", 0, 0), ("loss", 0, 0), ("loss", 1, 0), ("loss", 1, 1)]
        assert [r.step for r in tracking.metrics(session, job, key="loss", rank=1)] == [0, 1]
        assert tracking.metrics(session, job, key="nope") == []


def test_non_finite_values_are_stored_as_null(sessions: sessionmaker[Session]) -> None:
    job = new_job(sessions)
    with sessions.begin() as session:
        tracking.record_metrics(session, job, [
            Point("loss", 0, math.nan), Point("loss", 1, math.inf), Point("loss", 2, None)],
            now=1.0)
    with sessions() as session:
        assert [r.value for r in tracking.metrics(session, job)] == [None, None, None]


def test_steps_beyond_32_bits_are_kept(sessions: sessionmaker[Session]) -> None:
    job = new_job(sessions)
    with sessions.begin() as session:
        tracking.record_metrics(session, job, [Point("tokens", 2**40, 1.0)], now=1.0)
    with sessions() as session:
        assert tracking.metrics(session, job)[0].step == 2**40


def test_params_upsert_and_read_back_sorted(sessions: sessionmaker[Session]) -> None:
    job = new_job(sessions)
    with sessions.begin() as session:
        tracking.record_params(session, job, {"lr": "0.1", "batch": "64"}, 1.0)
    with sessions.begin() as session:
        tracking.record_params(session, job, {"lr": "0.01"}, 2.0)
    with sessions() as session:
        assert tracking.params(session, job) == {"batch": "64", "lr": "0.01"}


def test_unknown_jobs_are_not_found(sessions: sessionmaker[Session]) -> None:
    with sessions() as session, pytest.raises(NotFound, match="no job 'ghost'"):
        tracking.record_metrics(session, "ghost", [Point("loss", 0, 1.0)], 1.0)
    with sessions() as session, pytest.raises(NotFound):
        tracking.params(session, "ghost")


def test_artifact_records_list_by_prefix(sessions: sessionmaker[Session]) -> None:
    job = new_job(sessions)
    with sessions.begin() as session:
        for path in ("model.bin", "ckpt/a.bin", "ckpt/b/c.bin", "ckpt2/d.bin"):
            tracking.record_artifact(session, job, path, 3, "ab" * 32, 1.0)
        tracking.record_artifact(session, job, "model.bin", 5, "cd" * 32, 2.0)  # replaced
    with sessions() as session:
        assert [r.path for r in tracking.artifacts(session, job, prefix="ckpt")] == [
            "ckpt/a.bin", "ckpt/b/c.bin"]
        assert tracking.artifact(session, job, "model.bin").size == 5
        with pytest.raises(NotFound, match="has no artifact 'nope'"):
            tracking.artifact(session, job, "nope")


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a//b", "a/../b", "", ".aip/x",
                                  "a*", "bad\nname"])
def test_artifact_paths_cannot_leave_the_job(path: str) -> None:
    with pytest.raises(InvalidSpec, match="invalid artifact path"):
        tracking.artifact_key("train-1", path)


def test_an_artifact_key_is_under_the_job() -> None:
    assert tracking.artifact_key("train-1", "ckpt/model.bin") == "jobs/train-1/ckpt/model.bin"


def test_job_tokens_are_stored_only_as_hashes(sessions: sessionmaker[Session]) -> None:
    job, other = new_job(sessions, "a"), new_job(sessions, "b")
    with sessions.begin() as session:
        env = tracking.job_token_environment(session, job, 1.0)
        other_token = tracking.issue_job_token(session, other, 1.0)
    token = env["AIP_JOB_TOKEN"]
    assert len(token) >= 40 and token != other_token
    with sessions() as session:
        stored = session.scalars(select(JobTokenRow.token_hash)).all()
        assert token not in stored and tracking.token_hash(token) in stored
        assert tracking.job_of_token(session, token) == job
        assert tracking.job_of_token(session, other_token) == other
        assert tracking.job_of_token(session, "made-up") is None
