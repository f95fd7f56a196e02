"""Pending joins remember their partition, so only the worker that owns it closes them.

Joins written before this revision have none; any worker may close those.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pending_joins") as table:
        table.add_column(sa.Column("partition", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pending_joins") as table:
        table.drop_column("partition")
