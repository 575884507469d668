"""Model registry: models, model_versions and model_aliases (``aip.store.registry_tables``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "model_versions",
        sa.Column("name", sa.String(64), sa.ForeignKey("models.name", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("flavor", sa.String(16), nullable=True),
        sa.Column("manifest", sa.Text(), nullable=True),
        sa.Column("signature", sa.Text(), nullable=True),
        sa.Column("storage_prefix", sa.String(256), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("files", sa.Text(), nullable=False),
        sa.Column("source_job", sa.String(96), nullable=True),
        sa.Column("source_artifact", sa.String(1024), nullable=True),
        sa.Column("metrics", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=True),
    )
    op.create_index("ix_model_versions_source_job", "model_versions", ["source_job"])
    op.create_table(
        "model_aliases",
        sa.Column("name", sa.String(64), sa.ForeignKey("models.name", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("alias", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["name", "version"],
                                ["model_versions.name", "model_versions.version"],
                                ondelete="CASCADE"),
    )


def downgrade() -> None:
    op.drop_table("model_aliases")
    op.drop_index("ix_model_versions_source_job", table_name="model_versions")
    op.drop_table("model_versions")
    op.drop_table("models")
