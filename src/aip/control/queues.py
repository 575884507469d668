"""Queue services: create, list and get queues; make sure the default queue exists."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from aip.control.snapshot import queue_spec
from aip.errors import Conflict, NotFound
from aip.spec import QueueSpec
from aip.store.tables import QueueRow

DEFAULT_QUEUE = "default"


def create(session: Session, spec: QueueSpec, now: float) -> QueueSpec:
    if session.get(QueueRow, spec.name) is not None:
        raise Conflict(f"queue {spec.name!r} already exists", fields={"name": "already exists"})
    session.add(QueueRow(name=spec.name, spec=spec.model_dump_json(), created_at=now))
    return spec


def get(session: Session, name: str) -> QueueSpec:
    row = session.get(QueueRow, name)
    if row is None:
        raise NotFound(f"no queue {name!r}: list queues with `aip queue list`",
                       fields={"name": "unknown queue"})
    return queue_spec(row)


def list_all(session: Session) -> list[QueueSpec]:
    return [queue_spec(row) for row in session.scalars(select(QueueRow).order_by(QueueRow.name))]


def ensure_default(session: Session, now: float) -> None:
    """The default queue exists out of the box, with no quota limits."""
    if session.get(QueueRow, DEFAULT_QUEUE) is None:
        create(session, QueueSpec(name=DEFAULT_QUEUE, description="out-of-the-box queue"), now)
