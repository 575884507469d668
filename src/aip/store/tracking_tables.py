"""Storage models of tracking: what jobs log through the SDK (``aip.log_metrics``, ...) and
the job-scoped tokens their replicas report with. Created by migration 0003.

A metric point is unique per (job, key, replica rank, step): logging a step again (a retried
upload, a job resumed from a checkpoint) replaces its value, so a chart of loss against step
has one line per replica. A param is one string per (job, key), the last write winning. An
artifact row describes one stored file, under ``jobs/<job id>/<path>`` in the artifact store.
Job tokens are kept only as SHA-256 hashes.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from aip.store.tables import Base


def _job_id(*, primary_key: bool = True) -> Mapped[str]:
    return mapped_column(String(96), ForeignKey("jobs.id", ondelete="CASCADE"),
                         primary_key=primary_key, index=not primary_key)


class MetricRow(Base):
    __tablename__ = "metrics"

    job_id: Mapped[str] = _job_id()
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer, primary_key=True)  # the replica's AIP_RANK
    step: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)  # None: NaN or ±inf
    time: Mapped[float] = mapped_column(Float)


class ParamRow(Base):
    __tablename__ = "params"

    job_id: Mapped[str] = _job_id()
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    time: Mapped[float] = mapped_column(Float)


class ArtifactRow(Base):
    __tablename__ = "artifacts"

    job_id: Mapped[str] = _job_id()
    path: Mapped[str] = mapped_column(String(1024), primary_key=True)  # relative to the job
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    time: Mapped[float] = mapped_column(Float)


class JobTokenRow(Base):
    __tablename__ = "job_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex
    job_id: Mapped[str] = _job_id(primary_key=False)
    created_at: Mapped[float] = mapped_column(Float)
