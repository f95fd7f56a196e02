"""Initial schema: loops, policy versions, embedded event log, offsets, joins, examples.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "loops",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("current_version", sa.Integer, nullable=False),
    )
    op.create_table(
        "policy_versions",
        sa.Column("loop", sa.String(128), sa.ForeignKey("loops.name", ondelete="CASCADE"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("statistics", sa.LargeBinary, nullable=False),
        sa.Column("examples_learned", sa.BigInteger, nullable=False),
        sa.Column("note", sa.String(256), nullable=False),
    )
    op.create_table(
        "event_log",
        sa.Column("stream", sa.String(64), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("offset", sa.BigInteger, primary_key=True),
        sa.Column("key", sa.String(256), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("appended_at", sa.Float, nullable=False),
    )
    op.create_table(
        "log_partitions",
        sa.Column("stream", sa.String(64), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("next_offset", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "consumer_offsets",
        sa.Column("group", sa.String(128), primary_key=True),
        sa.Column("stream", sa.String(64), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("next_offset", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "pending_joins",
        sa.Column("event_id", sa.String(256), primary_key=True),
        sa.Column("loop", sa.String(128)),
        sa.Column("decision", sa.Text),
        sa.Column("first_seen", sa.Float, nullable=False),
        sa.Column("activated_at", sa.Float),
        sa.Column("close_at", sa.Float, nullable=False),
        sa.Column("rewards", sa.Text, nullable=False),
    )
    op.create_index("ix_pending_joins_close_at", "pending_joins", ["close_at"])
    op.create_table(
        "examples",
        sa.Column("event_id", sa.String(256), primary_key=True),
        sa.Column("loop", sa.String(128)),
        sa.Column("decided_at", sa.Float),
        sa.Column("closed_at", sa.Float, nullable=False),
        sa.Column("decision", sa.Text),
        sa.Column("reward", sa.Float),
        sa.Column("reward_count", sa.Integer, nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("learned", sa.Boolean, nullable=False),
    )
    op.create_index("ix_examples_loop_closed", "examples", ["loop", "closed_at"])
    op.create_index("ix_examples_unlearned", "examples", ["learned", "loop"])


def downgrade() -> None:
    for table in ("examples", "pending_joins", "consumer_offsets", "log_partitions", "event_log", "policy_versions", "loops"):
        op.drop_table(table)
