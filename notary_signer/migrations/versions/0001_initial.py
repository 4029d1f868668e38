"""Initial schema: the private_keys table.

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


def upgrade() -> None:
    op.create_table(
        "private_keys",
        sa.Column("keyid", sa.String(64), primary_key=True),
        sa.Column("gun", sa.String(255), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("algorithm", sa.String(32), nullable=False),
        sa.Column("keytype", sa.String(32), nullable=False),
        sa.Column("scheme", sa.String(64), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("passphrase_alias", sa.String(64), nullable=False),
        sa.Column("encrypted_private", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_used", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_private_keys_gun_role", "private_keys", ["gun", "role", "created_at"])
    op.create_index("ix_private_keys_alias", "private_keys", ["passphrase_alias"])


def downgrade() -> None:
    op.drop_index("ix_private_keys_alias", table_name="private_keys")
    op.drop_index("ix_private_keys_gun_role", table_name="private_keys")
    op.drop_table("private_keys")
