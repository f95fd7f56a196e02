"""The migrations build exactly the schema the models describe, and upgrade a database that holds data."""

from __future__ import annotations

import json
import time

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, select

from decide.store.db import make_engine, migrate
from decide.store.models import Base, ConsumerOffset, PendingJoin


def test_the_migrated_schema_matches_the_models(database_url):
    migrate(database_url)
    engine = make_engine(database_url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert differences == []


def test_upgrading_keeps_pending_joins_and_offsets(database_url):
    migrate(database_url, "0002")
    engine = make_engine(database_url)
    now = time.time()
    with engine.begin() as connection:
        connection.execute(
            insert(PendingJoin.__table__),
            [{"event_id": "e1", "loop": "default", "decision": None, "first_seen": now, "activated_at": None,
              "close_at": now + 5, "rewards": json.dumps([["r1", now, 1.0]])}],
        )
        connection.execute(
            insert(ConsumerOffset.__table__), [{"group": "g", "stream": "rewards", "partition": 0, "next_offset": 7}]
        )
    migrate(database_url)
    with engine.connect() as connection:
        join = connection.execute(select(PendingJoin.__table__)).one()
        offset = connection.execute(select(ConsumerOffset.__table__)).one()
    engine.dispose()
    assert (join.event_id, join.partition, json.loads(join.rewards)) == ("e1", None, [["r1", now, 1.0]])
    assert (offset.next_offset, offset.read_offset) == (7, None)
