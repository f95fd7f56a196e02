"""The joiner: the joins in memory (``decide.pipeline.joins``), and the older ones kept in ``pending_joins``.

Young joins live in memory. The worker's stored offsets stay at the first record
of the oldest young join, so after a crash those records are read again and the
joins rebuilt. A join still open ``spill_after`` seconds (event time) after its
first record is written to ``pending_joins``; from then on the database holds it,
and the offsets move on. Every closed join is archived in ``examples`` (by the
learner), whose primary key makes a second close of the same event impossible.
This module is the joins' SQL: the look-ups of a batch's events, the stored joins
due, the write-backs and the spills.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import Row, bindparam, delete, select, update
from sqlalchemy.orm import Session

from decide.events.log import Record
from decide.events.schemas import JoinedEvent
from decide.pipeline.joins import (
    ConfigLookup,
    Found,
    Join,
    JoinedExample,
    Joins,
    close,
    is_due,
)
from decide.store.bulk import among, id_chunks, insert_rows
from decide.store.models import Example, PendingJoin

PENDING = PendingJoin.__table__
STORED_CLOSE_LIMIT = 50_000
"""Most stored joins one cycle closes per partition: after a long outage the rest wait for the next cycles."""


class Joiner(Joins):
    """The joins of the partitions one worker owns: young ones in memory, older ones in ``pending_joins``."""

    def __init__(self, spill_after: float) -> None:
        super().__init__()
        self.spill_after = spill_after

    def look_up(self, session: Session, logged: Sequence[tuple[Record, JoinedEvent]]) -> Found:
        """What the database holds of the logged events not in memory: their stored joins and the closed ones.

        Stored joins are locked first (on PostgreSQL), then closed ones looked for: a join another member closes
        meanwhile is then seen closed. The worker runs this in its transaction, or on SQLite just before it (see
        ``decide.pipeline.worker``).
        """
        unseen = {event.event_id for _, event in logged if event.event_id not in self.young}
        stored: dict[str, Join] = {}
        for ids in id_chunks(session, unseen):
            query = select(PENDING).where(among(session, PENDING.c.event_id, ids)).with_for_update()
            stored.update((row.event_id, _join_of(row)) for row in session.execute(query))
        return Found(stored, _closed_ids(session, unseen - stored.keys()))

    def close_due(
        self, session: Session, watermarks: dict[int, float], now: float, config_of: ConfigLookup
    ) -> list[JoinedExample]:
        """Close every join whose window ended by its partition's watermark, write back the rest, and spill old ones.

        Stored joins that another member is closing or updating right now are skipped, never closed twice.
        """
        closing = self.take_due(watermarks)
        stored_due = {join.event_id: join for join in self.stored.values() if is_due(join, watermarks)}
        update_rows = [_row(join) for join in self.stored.values() if not is_due(join, watermarks)]
        for partition, watermark in watermarks.items():
            mine = (PENDING.c.partition == partition) | PENDING.c.partition.is_(None)
            query = select(PENDING).where(mine, PENDING.c.close_at <= watermark).order_by(PENDING.c.close_at).limit(STORED_CLOSE_LIMIT)
            for row in session.execute(query.with_for_update(skip_locked=True)):
                if row.event_id not in self.stored and row.event_id not in stored_due and is_due(join := _join_of(row), watermarks):
                    stored_due[row.event_id] = join
        if update_rows:
            session.execute(
                update(PENDING).where(PENDING.c.event_id == bindparam("key")),
                [{"key": row.pop("event_id"), **row} for row in update_rows],
            )
        for ids in id_chunks(session, set(stored_due)):
            session.execute(delete(PENDING).where(among(session, PENDING.c.event_id, ids)))
        insert_rows(session, PENDING, [_row(join) for join in self.take_old(watermarks, self.spill_after)])
        self.stored = {}
        return [close(join, now, config_of) for join in closing + list(stored_due.values())]


def _row(join: Join) -> dict:
    """``join`` as a ``pending_joins`` row."""
    return {
        "event_id": join.event_id, "loop": join.loop, "partition": join.partition, "decision": join.decision_json,
        "first_seen": join.first_seen, "activated_at": join.activated_at, "close_at": join.close_at,
        "rewards": json.dumps(join.rewards),
    }


def _join_of(row: Row) -> Join:
    """The join a ``pending_joins`` row holds."""
    return Join(
        event_id=row.event_id, loop=row.loop, partition=row.partition, first_seen=row.first_seen, close_at=row.close_at,
        decision_json=row.decision, activated_at=row.activated_at, rewards=json.loads(row.rewards),
    )


def _closed_ids(session: Session, ids: set[str]) -> set[str]:
    """Those of ``ids`` already archived in ``examples``."""
    closed: set[str] = set()
    for chunk in id_chunks(session, ids):
        closed.update(session.scalars(select(Example.event_id).where(among(session, Example.event_id, chunk))))
    return closed
