"""Storage model of serving endpoints (migration 0005).

An endpoint row holds the spec as submitted, the model versions its URIs resolved to when it
was (re)deployed (``versions``: label -> the registry's JSON of that version, so replicas keep
serving the same bytes even after an alias moves), and the hashes of its tokens. Its replicas
are ordinary jobs labelled ``aip.io/endpoint=<name>``.
"""

from __future__ import annotations

from sqlalchemy import Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from aip.store.tables import Base


class EndpointRow(Base):
    __tablename__ = "endpoints"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    spec: Mapped[str] = mapped_column(Text)  # EndpointSpec JSON
    versions: Mapped[str] = mapped_column(Text)  # JSON {label: registry version JSON}
    token_hashes: Mapped[str] = mapped_column(Text, default="[]")  # JSON [sha256 hex]
    state: Mapped[str] = mapped_column(String(16), default="ACTIVE")  # ACTIVE | DELETING
    revision: Mapped[int] = mapped_column(Integer, default=1)  # +1 per deploy
    replicas: Mapped[int] = mapped_column(Integer, default=0)  # what the autoscaler wants
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)  # its last decision
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
