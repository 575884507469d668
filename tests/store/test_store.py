"""Store tests, run against SQLite and PostgreSQL: migrations, job and queue services, and
bad input leaving the store intact."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, select, text

from aip.control import jobs as job_service
from aip.control import queues as queue_service
from aip.control.states import JobState
from aip.errors import Conflict, InvalidSpec, NotFound, Unschedulable
from aip.scheduler import Gpu, Node
from aip.spec import JobSpec, QueueSpec
from aip.store.db import make_engine, migrate
from aip.store.tables import EventRow, JobRow
from aip.testing.store import migrated_sessions

NODES = [Node(name="n1", cpu_milli=8000, memory_bytes=32 * 2**30,
              gpus=tuple(Gpu(i, "T4", 16384) for i in range(4)))]


def job(name: str = "train", **changes: object) -> JobSpec:
    data: dict[str, object] = {"name": name, "command": ["python", "-c", "pass"]}
    data.update(changes)
    return JobSpec.model_validate(data)


@pytest.fixture
def sessions(database_url: str):  # type: ignore[no-untyped-def]
    with migrated_sessions(database_url) as factory:
        yield factory


def test_migrations_create_every_table_on_an_empty_database(database_url: str) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    migrate(engine)  # idempotent: a second start changes nothing
    tables = set(inspect(engine).get_table_names())
    assert {"jobs", "replicas", "events", "queues", "alembic_version"} <= tables
    with engine.connect() as conn:
        assert conn.execute(text("select version_num from alembic_version")).scalar() == _head()
    columns = {c["name"] for c in inspect(engine).get_columns("replicas")}
    assert {"ports", "generation"} <= columns
    engine.dispose()


def test_submitted_job_is_pending_and_listed_newest_first(sessions) -> None:  # type: ignore[no-untyped-def]
    with sessions.begin() as session:
        first = job_service.submit(session, job("first"), NODES, 10.0)
        second = job_service.submit(session, job("second", priority=5), NODES, 11.0)
    with sessions() as session:
        rows, total = job_service.list_jobs(session, job_service.JobFilter())
        assert total == 2
        assert [r.id for r in rows] == [second.id, first.id]
        assert job_service.get(session, first.id).state == JobState.PENDING
        events = job_service.events(session, first.id)
        assert [e.type for e in events] == ["Submitted"]


def test_list_filters_by_state_queue_text_and_label(sessions) -> None:  # type: ignore[no-untyped-def]
    with sessions.begin() as session:
        queue_service.create(session, QueueSpec(name="team-a"), 1.0)
        a = job_service.submit(session, job("alpha", queue="team-a", labels={"team": "a"}),
                               NODES, 1.0)
        job_service.submit(session, job("beta"), NODES, 2.0)
    with sessions() as session:
        for where, expected in [
            (job_service.JobFilter(queue="team-a"), [a.id]),
            (job_service.JobFilter(text="alp"), [a.id]),
            (job_service.JobFilter(labels={"team": "a"}), [a.id]),
            (job_service.JobFilter(states=["running"]), []),
        ]:
            rows, total = job_service.list_jobs(session, where)
            assert [r.id for r in rows] == expected and total == len(expected), where
        rows, total = job_service.list_jobs(session, job_service.JobFilter(limit=1, offset=1))
        assert total == 2 and len(rows) == 1


def test_cancel_of_a_pending_job_is_immediate_and_final(sessions) -> None:  # type: ignore[no-untyped-def]
    with sessions.begin() as session:
        row = job_service.submit(session, job(), NODES, 1.0)
    with sessions.begin() as session:
        assert job_service.request_cancel(session, row.id, 2.0).state == JobState.CANCELLED
    with sessions.begin() as session, pytest.raises(Conflict, match="already CANCELLED"):
        job_service.request_cancel(session, row.id, 3.0)


@pytest.mark.parametrize(("spec", "error", "field"), [
    pytest.param(job(queue="nope"), InvalidSpec, "queue", id="unknown-queue"),
    pytest.param(job(resources={"gpu": 8}), Unschedulable, "replicas",
                 id="more-gpus-than-any-node"),
    pytest.param(job(resources={"gpu": 1, "gpu_type": ["V100M32"]}), Unschedulable, "replicas",
                 id="gpu-model-nobody-has"),
])
def test_bad_submissions_are_rejected_and_leave_the_store_intact(
        sessions, spec: JobSpec, error: type[Exception], field: str) -> None:  # type: ignore[no-untyped-def]
    with sessions.begin() as session:
        keep = job_service.submit(session, job("keep"), NODES, 1.0)
    with pytest.raises(error) as caught, sessions.begin() as session:
        job_service.submit(session, spec, NODES, 2.0)
    assert field in caught.value.fields  # type: ignore[attr-defined]
    with sessions() as session:
        assert [r.id for r in session.scalars(select(JobRow))] == [keep.id]
        assert len(session.scalars(select(EventRow)).all()) == 1


def test_unknown_job_id_is_not_found(sessions) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session, pytest.raises(NotFound, match="no job 'missing-1'"):
        job_service.get(session, "missing-1")


def test_queues_are_created_once_and_read_back_with_their_quota(sessions) -> None:  # type: ignore[no-untyped-def]
    spec = QueueSpec.model_validate({"name": "team-a", "cohort": "research",
                                     "quota": {"cpu": 8, "gpu": {"T4": 2}}})
    with sessions.begin() as session:
        queue_service.create(session, spec, 1.0)
    with sessions.begin() as session, pytest.raises(Conflict, match="already exists"):
        queue_service.create(session, spec, 2.0)
    with sessions() as session:
        assert queue_service.get(session, "team-a") == spec
        assert [q.name for q in queue_service.list_all(session)] == ["default", "team-a"]
        with pytest.raises(NotFound):
            queue_service.get(session, "nope")


def test_a_store_of_the_first_release_keeps_its_jobs_through_the_upgrade(
        database_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    from aip.store.db import MIGRATIONS_DIR

    engine = make_engine(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
    with engine.begin() as conn:
        conn.execute(text(
            "insert into jobs (id, name, queue, priority, state, spec, labels, attempt, "
            "max_retries, preemptions, created_at, updated_at, kill_sent) values ('old-1', "
            "'old', 'default', 0, 'PENDING', '{}', '{}', 0, 2, 0, 1.0, 1.0, false)"))
    migrate(engine)
    with engine.connect() as conn:
        row = conn.execute(text("select max_retries, restarts from jobs where id = 'old-1'")).one()
    assert tuple(row) == (2, 0)
    engine.dispose()


def _head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from aip.store.db import MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head
