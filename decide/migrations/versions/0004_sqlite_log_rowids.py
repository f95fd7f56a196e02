"""On SQLite, the embedded log's offsets are the table's row ids, unique across the log.

SQLite runs one writer at a time, so the order in which it assigns row ids is
the order in which appends commit: the per-partition counter rows, and the
second b-tree that the (stream, partition, offset) key kept, only cost every
append a statement and pages (docs/decisions.md). Existing records are
renumbered in the order they were appended, each partition's order kept, and
the embedded log's stored consumer offsets are moved to the same records. The
counter rows are cleared: nothing reads them on SQLite any more. PostgreSQL is
unchanged.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_COLUMNS = 'stream, "partition", "offset", key, value, appended_at'


def _move_consumer_offsets(end: str) -> None:
    """Point the embedded log's stored offsets at the same records in the ``offset_map`` numbering.

    A position moves to the first record at or after it in its partition, or to
    ``end`` (an SQL expression) where none is. Only positions of partitions the
    embedded log has opened move: Kafka's are keyed by topic name and stay.
    """
    for column in ("next_offset", "read_offset"):
        op.execute(
            f"""
            UPDATE consumer_offsets SET {column} = coalesce(
                (SELECT min(m.new) FROM offset_map m WHERE m.stream = consumer_offsets.stream
                 AND m."partition" = consumer_offsets."partition" AND m.old >= consumer_offsets.{column}),
                {end})
            WHERE {column} IS NOT NULL AND EXISTS (SELECT 1 FROM offset_map_partitions p
                WHERE p.stream = consumer_offsets.stream AND p."partition" = consumer_offsets."partition")
            """
        )


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    # Appended order, each partition's order kept even if the clock stepped back: the running latest time.
    op.execute(
        """
        CREATE TEMP TABLE offset_map AS
        SELECT stream, "partition", old, row_number() OVER (ORDER BY since, stream, "partition", old) AS new FROM (
            SELECT stream, "partition", "offset" AS old,
                   max(appended_at) OVER (PARTITION BY stream, "partition" ORDER BY "offset") AS since
            FROM event_log)
        """
    )
    op.execute('CREATE TEMP TABLE offset_map_partitions AS SELECT stream, "partition" FROM log_partitions')
    op.execute(
        """
        CREATE TABLE event_log_0004 (
            stream VARCHAR(64) NOT NULL,
            "partition" INTEGER NOT NULL,
            "offset" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
            key VARCHAR(256) NOT NULL,
            value TEXT NOT NULL,
            appended_at FLOAT NOT NULL)
        """
    )
    op.execute(
        f"""
        INSERT INTO event_log_0004 ({_COLUMNS})
        SELECT e.stream, e."partition", m.new, e.key, e.value, e.appended_at
        FROM event_log e JOIN offset_map m ON m.stream = e.stream AND m."partition" = e."partition" AND m.old = e."offset"
        ORDER BY m.new
        """
    )
    _move_consumer_offsets("(SELECT coalesce(max(new), 0) + 1 FROM offset_map)")
    op.execute("DROP TABLE event_log")
    op.execute("ALTER TABLE event_log_0004 RENAME TO event_log")
    op.execute("DELETE FROM log_partitions")
    op.execute("DROP TABLE offset_map")
    op.execute("DROP TABLE offset_map_partitions")


def downgrade() -> None:
    """Offsets counted per partition again, from 0, and the counters set past them.

    The embedded log's positions are told from Kafka's by stream name: with
    ``DECIDE_TOPIC_PREFIX`` empty, Kafka's positions on a SQLite database would be
    moved too.
    """
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(
        """
        CREATE TEMP TABLE offset_map AS
        SELECT stream, "partition", "offset" AS old,
               row_number() OVER (PARTITION BY stream, "partition" ORDER BY "offset") - 1 AS new
        FROM event_log
        """
    )
    op.execute(  # the embedded log's streams; Kafka's positions are keyed by topic name
        """CREATE TEMP TABLE offset_map_partitions AS
        SELECT stream, "partition" FROM consumer_offsets WHERE stream IN ('decisions', 'rewards')"""
    )
    op.execute(
        """
        CREATE TABLE event_log_0003 (
            stream VARCHAR(64) NOT NULL,
            "partition" INTEGER NOT NULL,
            "offset" BIGINT NOT NULL,
            key VARCHAR(256) NOT NULL,
            value TEXT NOT NULL,
            appended_at FLOAT NOT NULL,
            PRIMARY KEY (stream, "partition", "offset"))
        """
    )
    op.execute(
        f"""
        INSERT INTO event_log_0003 ({_COLUMNS})
        SELECT e.stream, e."partition", m.new, e.key, e.value, e.appended_at
        FROM event_log e JOIN offset_map m ON m.stream = e.stream AND m."partition" = e."partition" AND m.old = e."offset"
        """
    )
    _move_consumer_offsets(
        """(SELECT count(*) FROM offset_map m WHERE m.stream = consumer_offsets.stream
            AND m."partition" = consumer_offsets."partition")"""
    )
    op.execute("DROP TABLE event_log")
    op.execute("ALTER TABLE event_log_0003 RENAME TO event_log")
    op.execute(
        'INSERT INTO log_partitions (stream, "partition", next_offset) '
        'SELECT stream, "partition", count(*) FROM event_log GROUP BY stream, "partition"'
    )
    op.execute("DROP TABLE offset_map")
    op.execute("DROP TABLE offset_map_partitions")
