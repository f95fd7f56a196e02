"""The migrations build exactly the schema the models describe, and upgrade a database that holds data."""

from __future__ import annotations

import json
import time

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, select

from decide.events.embedded import open_embedded_log, partition_of
from decide.events.schemas import STREAMS
from decide.store.db import alembic_config, make_engine, migrate
from decide.store.models import Base, ConsumerOffset, LogPartition, LogRecord, PendingJoin


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


def test_sqlite_log_offsets_become_row_ids_with_the_stored_positions_on_the_same_records(tmp_path):
    """Revision 0004 renumbers SQLite's log in appended order and moves the embedded log's positions; downgrading undoes it."""
    url = f"sqlite:///{tmp_path / 'decide.db'}"
    migrate(url, "0003")
    engine = make_engine(url)
    appended = [("decisions", 0, 0, 10.0), ("decisions", 0, 1, 20.0), ("decisions", 0, 2, 30.0),
                ("rewards", 1, 0, 15.0), ("rewards", 1, 1, 25.0)]
    with engine.begin() as connection:
        connection.execute(insert(LogRecord.__table__), [
            {"stream": s, "partition": p, "offset": o, "key": f"{s}-{o}", "value": f"{s}-{o}", "appended_at": t} for s, p, o, t in appended
        ])
        connection.execute(insert(LogPartition.__table__), [
            {"stream": s, "partition": p, "next_offset": {("decisions", 0): 3, ("rewards", 1): 2}.get((s, p), 0)}
            for s in ("decisions", "rewards") for p in range(2)
        ])
        connection.execute(insert(ConsumerOffset.__table__), [
            {"group": "g", "stream": "decisions", "partition": 0, "next_offset": 1, "read_offset": 3},
            {"group": "g", "stream": "rewards", "partition": 1, "next_offset": 2, "read_offset": None},
            {"group": "g", "stream": "decide.decisions", "partition": 0, "next_offset": 5, "read_offset": 5},  # Kafka's
        ])
    migrate(url)

    def log_and_positions() -> tuple[list[tuple], set[tuple]]:
        with engine.connect() as connection:
            log = [tuple(row) for row in connection.execute(select(LogRecord.offset, LogRecord.value).order_by(LogRecord.offset))]
            positions = {tuple(row) for row in connection.execute(
                select(ConsumerOffset.stream, ConsumerOffset.partition, ConsumerOffset.next_offset, ConsumerOffset.read_offset))}
        return log, positions

    log, positions = log_and_positions()
    assert log == [(1, "decisions-0"), (2, "rewards-0"), (3, "decisions-1"), (4, "rewards-1"), (5, "decisions-2")]
    assert positions == {("decisions", 0, 3, 6), ("rewards", 1, 6, None), ("decide.decisions", 0, 5, 5)}
    event_log = open_embedded_log(engine, 2, STREAMS)
    event_log.append("decisions", "k", "appended after")
    subscription = event_log.subscribe("g", STREAMS)
    read = subscription.poll({("decisions", 0): 3, ("rewards", 1): 6, ("decisions", 1): 6, ("rewards", 0): 6}, 100, 0)
    assert [record.value for record in read] == ["decisions-1", "decisions-2", "appended after"]
    event_log.close()

    command.downgrade(alembic_config(url), "0003")
    log, positions = log_and_positions()
    with engine.connect() as connection:
        counters = {tuple(row) for row in connection.execute(select(LogPartition.stream, LogPartition.partition, LogPartition.next_offset))}
    counted = {("decisions", 0): 3, ("rewards", 1): 2}
    counted[("decisions", partition_of("k", 2))] = counted.get(("decisions", partition_of("k", 2)), 0) + 1
    assert counters == {(stream, partition, count) for (stream, partition), count in counted.items()}
    assert positions == {("decisions", 0, 1, 3), ("rewards", 1, 2, None), ("decide.decisions", 0, 5, 5)}
    engine.dispose()
