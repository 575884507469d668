"""A migrated store for tests: the schema applied and the default queue created."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session, sessionmaker

from aip.control import queues as queue_service
from aip.store.db import make_engine, migrate, session_factory


@contextmanager
def migrated_sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on ``database_url`` after every migration, with the default queue; the
    engine is disposed of afterwards."""
    engine = make_engine(database_url)
    migrate(engine)
    factory = session_factory(engine)
    with factory.begin() as session:
        queue_service.ensure_default(session, 1.0)
    try:
        yield factory
    finally:
        engine.dispose()
