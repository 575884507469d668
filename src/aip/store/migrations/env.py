"""Alembic environment: AIP runs migrations programmatically (``aip.store.db.migrate``),
handing over its own connection; ``alembic`` on the command line works too with
``-x url=...``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from aip.store.tables import Base

target_metadata = Base.metadata
config = context.config


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url")
    if not url:
        raise SystemExit("give the database: alembic -x url=postgresql://... upgrade head")
    engine = create_engine(url)
    with engine.connect() as conn:
        _run(conn)


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite needs batch mode for ALTER TABLE
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
