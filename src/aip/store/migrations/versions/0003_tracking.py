"""Tracking: metrics, params and artifacts a job logs, and the job-scoped tokens (hashed)
its replicas report with (``aip.store.tracking_tables``).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _job_id() -> sa.Column[str]:
    return sa.Column("job_id", sa.String(96), sa.ForeignKey("jobs.id", ondelete="CASCADE"),
                     primary_key=True)


def upgrade() -> None:
    op.create_table(
        "metrics",
        _job_id(),
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("rank", sa.Integer(), primary_key=True),
        sa.Column("step", sa.BigInteger(), primary_key=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("time", sa.Float(), nullable=False),
    )
    op.create_table(
        "params",
        _job_id(),
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("time", sa.Float(), nullable=False),
    )
    op.create_table(
        "artifacts",
        _job_id(),
        sa.Column("path", sa.String(1024), primary_key=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("time", sa.Float(), nullable=False),
    )
    op.create_table(
        "job_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("job_id", sa.String(96), sa.ForeignKey("jobs.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_job_tokens_job_id", "job_tokens", ["job_id"])


def downgrade() -> None:
    op.drop_index("ix_job_tokens_job_id", table_name="job_tokens")
    op.drop_table("job_tokens")
    op.drop_table("artifacts")
    op.drop_table("params")
    op.drop_table("metrics")
