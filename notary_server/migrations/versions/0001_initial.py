"""Initial schema: tuf_files, repositories, changefeed.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# 64-bit ids, except on SQLite where only INTEGER PRIMARY KEY auto-increments.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "tuf_files",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("gun", sa.String(255), nullable=False),
        sa.Column("role", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.CHAR(64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tuf_files"),
        sa.UniqueConstraint("gun", "role", "version", name="uq_tuf_files_gun_role_version"),
    )
    op.create_index("ix_tuf_files_gun_role_sha256", "tuf_files", ["gun", "role", "sha256"])
    op.create_table(
        "repositories",
        sa.Column("gun", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("gun", name="pk_repositories"),
    )
    op.create_table(
        "changefeed",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("gun", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("category", sa.String(20), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_changefeed"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_changefeed_gun_id", "changefeed", ["gun", "id"])


def downgrade() -> None:
    op.drop_index("ix_changefeed_gun_id", table_name="changefeed")
    op.drop_table("changefeed")
    op.drop_table("repositories")
    op.drop_index("ix_tuf_files_gun_role_sha256", table_name="tuf_files")
    op.drop_table("tuf_files")
