"""Workers hold young joins in memory: pending joins remember their partition, offsets how far was read.

Only the worker that owns a partition closes its stored joins; joins written
before this revision have none, and any worker may close those. A consumer
offset is now where a successor must start reading, which can be behind where
the worker has read to (``read_offset``, its lag against the log's end), and
``generation`` counts the commits, so that a member whose joins in memory
predate another member's commit notices and reads again.

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
    with op.batch_alter_table("consumer_offsets") as table:
        table.add_column(sa.Column("read_offset", sa.BigInteger, nullable=True))
        table.add_column(sa.Column("generation", sa.BigInteger, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("consumer_offsets") as table:
        table.drop_column("generation")
        table.drop_column("read_offset")
    with op.batch_alter_table("pending_joins") as table:
        table.drop_column("partition")
