"""SQLAlchemy 2.x typed models; Alembic migrations in ``decide/migrations`` mirror them."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

EVENT_ID_LENGTH = 256


class Base(DeclarativeBase):
    pass


class Loop(Base):
    """A decision loop; ``current_version`` points at the policy version served now."""

    __tablename__ = "loops"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    created_at: Mapped[float] = mapped_column(Float)
    current_version: Mapped[int] = mapped_column(Integer)


class PolicyVersion(Base):
    """An immutable policy: its configuration and learned statistics at one point in time."""

    __tablename__ = "policy_versions"

    loop: Mapped[str] = mapped_column(ForeignKey("loops.name", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[float] = mapped_column(Float)
    config: Mapped[str] = mapped_column(Text)
    statistics: Mapped[bytes] = mapped_column(LargeBinary)
    examples_learned: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(String(256))


class LogRecord(Base):
    """One record of the embedded event log.

    On PostgreSQL the table's key is (stream, partition, offset), offsets counted per
    partition by ``log_partitions``. On SQLite, from revision 0004, ``offset`` alone is
    the key: the table's row id, assigned by the database (AUTOINCREMENT, so never
    reused) and unique across the log; (stream, partition, offset) identifies a
    record on both. The migrations build that table; ``create_all`` would not.
    """

    __tablename__ = "event_log"

    stream: Mapped[str] = mapped_column(String(64), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    offset: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    key: Mapped[str] = mapped_column(String(EVENT_ID_LENGTH))
    value: Mapped[str] = mapped_column(Text)
    appended_at: Mapped[float] = mapped_column(Float)


class LogPartition(Base):
    """The next offset of each embedded-log partition; its row lock orders appends. Unused on SQLite (revision 0004)."""

    __tablename__ = "log_partitions"

    stream: Mapped[str] = mapped_column(String(64), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger)


class ConsumerOffset(Base):
    """Where a consumer group resumes; written in the same transaction as the state it produced."""

    __tablename__ = "consumer_offsets"

    group: Mapped[str] = mapped_column(String(128), primary_key=True)
    stream: Mapped[str] = mapped_column(String(64), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger)
    """Where a successor starts reading: the first record of the oldest join held only in memory."""
    read_offset: Mapped[int | None] = mapped_column(BigInteger)
    """Where the worker had read to: the records at or after it are its lag. None before revision 0003."""
    generation: Mapped[int] = mapped_column(BigInteger, server_default="0")
    """Bumped by every commit of the owned partitions: a member whose memory predates it starts over."""


class PendingJoin(Base):
    """A decision waiting for rewards, or rewards waiting for their decision, open longer than a worker keeps it in memory."""

    __tablename__ = "pending_joins"

    event_id: Mapped[str] = mapped_column(String(EVENT_ID_LENGTH), primary_key=True)
    loop: Mapped[str | None] = mapped_column(String(128))
    partition: Mapped[int | None] = mapped_column(Integer)
    """The log partition of its records; None for joins written before revision 0003."""
    decision: Mapped[str | None] = mapped_column(Text)
    first_seen: Mapped[float] = mapped_column(Float)
    activated_at: Mapped[float | None] = mapped_column(Float)
    close_at: Mapped[float] = mapped_column(Float, index=True)
    rewards: Mapped[str] = mapped_column(Text, default="[]")


class Example(Base):
    """The archive of closed joins: what offline evaluation reads and what the learner has seen."""

    __tablename__ = "examples"
    __table_args__ = (
        Index("ix_examples_loop_closed", "loop", "closed_at"),
        Index("ix_examples_unlearned", "learned", "loop"),
    )

    event_id: Mapped[str] = mapped_column(String(EVENT_ID_LENGTH), primary_key=True)
    loop: Mapped[str | None] = mapped_column(String(128))
    decided_at: Mapped[float | None] = mapped_column(Float)
    closed_at: Mapped[float] = mapped_column(Float)
    decision: Mapped[str | None] = mapped_column(Text)
    reward: Mapped[float | None] = mapped_column(Float)
    reward_count: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(16))
    learned: Mapped[bool] = mapped_column(Boolean)
