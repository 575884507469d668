"""Storage models of the model registry: models, their numbered versions, and aliases.
Created by migration 0004.

A version's files live in the artifact store under ``storage_prefix``
(``models/<name>/<version>/``); its row keeps what a node needs to fetch and verify them
(``files``: path, size and sha256 of each; ``sha256``: the digest of that index) and its
lineage (the job it came from, that job's metrics when it was registered). A version is
``pending`` while its files are written, ``ready`` after, and ``removing`` while it is being
deleted; only ready versions resolve.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from aip.store.tables import Base

PENDING = "pending"
READY = "ready"
REMOVING = "removing"  # its files are being deleted (aip/control/model_removal.py)


class ModelRow(Base):
    __tablename__ = "models"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class ModelVersionRow(Base):
    __tablename__ = "model_versions"

    name: Mapped[str] = mapped_column(
        String(64), ForeignKey("models.name", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default=PENDING)
    flavor: Mapped[str | None] = mapped_column(String(16), nullable=True)
    manifest: Mapped[str | None] = mapped_column(Text, nullable=True)  # aip-model.json
    signature: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON
    storage_prefix: Mapped[str] = mapped_column(String(256))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    files: Mapped[str] = mapped_column(Text, default="[]")  # JSON [{path, size, sha256}]
    source_job: Mapped[str | None] = mapped_column(String(96), nullable=True, index=True)
    source_artifact: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    metrics: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON {key: value}
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ModelAliasRow(Base):
    __tablename__ = "model_aliases"

    name: Mapped[str] = mapped_column(
        String(64), ForeignKey("models.name", ondelete="CASCADE"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (ForeignKeyConstraint(
        ["name", "version"], ["model_versions.name", "model_versions.version"],
        ondelete="CASCADE"),)
