"""The embedded event log: an append-only, partitioned log in the service's own SQL database.

Offsets become visible in the order they were assigned, so a consumer reading
past offset n never later finds a record of that partition it skipped. How they
are assigned is the database's business:

* on PostgreSQL, or any database with row locks (``CounterLog``), an append
  advances its partition's counter row and holds the row's lock until it commits,
  so offsets are dense per partition;
* on SQLite (``SQLiteLog``), the offset is the table's row id: SQLite runs one
  writer at a time, so row ids are assigned in commit order, and they are unique
  across the log, with gaps in each partition where the others' records lie (as
  a Kafka partition's offsets may have). No counter row, and no second b-tree for
  a (stream, partition, offset) key: an append is one insert (docs/decisions.md).

Appends from the threads of one process are group-committed: while one thread
writes, the others queue their records, and the next writer takes every queued
record in one transaction. Each caller still returns only after its own record
has committed.

On a SQLite file, the writer uses this process's own connection with plain SQL
and polls for the database's single write lock (``decide.store.sqlite``).
"""

from __future__ import annotations

import sqlite3
import threading
import time
import zlib
from abc import abstractmethod
from itertools import takewhile

from sqlalchemy import Engine, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.exc import OperationalError

from decide.events.log import EventLog, LogUnavailable, Position, Record, Subscription
from decide.store.db import is_sqlite
from decide.store.models import LogPartition, LogRecord
from decide.store.sqlite import FileWriter, sqlite_file

_ADVANCE = (
    update(LogPartition)
    .where(LogPartition.stream == bindparam("of_stream"), LogPartition.partition == bindparam("of_partition"))
    .values(next_offset=LogPartition.next_offset + bindparam("count"))
    .returning(LogPartition.next_offset)
)
_APPEND = insert(LogRecord)
_READ = (
    select(LogRecord.offset, LogRecord.key, LogRecord.value)
    .where(
        LogRecord.stream == bindparam("stream"),
        LogRecord.partition == bindparam("partition"),
        LogRecord.offset >= bindparam("start"),
    )
    .order_by(LogRecord.offset)
    .limit(bindparam("limit"))
)

_OLDEST = (
    select(LogRecord.offset, LogRecord.appended_at)
    .where(
        LogRecord.stream == bindparam("stream"),
        LogRecord.partition == bindparam("partition"),
        LogRecord.offset < bindparam("below"),
    )
    .order_by(LogRecord.offset)
    .limit(bindparam("limit"))
)
_DELETE_THROUGH = delete(LogRecord).where(
    LogRecord.stream == bindparam("stream"),
    LogRecord.partition == bindparam("partition"),
    LogRecord.offset <= bindparam("through"),
)

_SCAN = (
    select(LogRecord.offset, LogRecord.stream, LogRecord.partition, LogRecord.key, LogRecord.value)
    .order_by(LogRecord.offset)
    .limit(bindparam("limit"))
)
_LAST_OFFSET = select(func.max(LogRecord.offset))
_LAST_FROM = (
    select(LogRecord.stream, LogRecord.partition, func.max(LogRecord.offset))
    .where(LogRecord.offset >= bindparam("start"))
    .group_by(LogRecord.stream, LogRecord.partition)
)
_OLDEST_IN_LOG = (
    select(LogRecord.offset, LogRecord.stream, LogRecord.partition, LogRecord.appended_at)
    .order_by(LogRecord.offset)
    .limit(bindparam("limit"))
)
_DELETE_THROUGH_OFFSET = delete(LogRecord).where(LogRecord.offset <= bindparam("through"))

TRIM_BATCH = 100
"""Most records one trimming transaction deletes. On SQLite it holds the write lock that every append waits for:
deleting decisions costs 40-54 µs each there, so 2,000 at a time held it for 80 ms, 100 for 5 ms."""


def partition_of(key: str, partitions: int) -> int:
    """Stable key → partition, identical for every stream."""
    return zlib.crc32(key.encode()) % partitions


def open_embedded_log(engine: Engine, partitions: int, streams: tuple[str, ...]) -> EmbeddedLog:
    """The embedded log for ``engine``'s database."""
    log_class = SQLiteLog if is_sqlite(engine) else CounterLog
    return log_class(engine, partitions, streams)


class _Pending:
    """One caller's record, queued for the next group commit."""

    __slots__ = ("error", "finished", "key", "partition", "stream", "value")

    def __init__(self, stream: str, partition: int, key: str, value: str) -> None:
        self.stream, self.partition, self.key, self.value = stream, partition, key, value
        self.finished = False
        self.error: BaseException | None = None


def _counts(batch: list[_Pending]) -> dict[tuple[str, int], int]:
    """Records per (stream, partition), in a plain dict: for the usual batch of one, 0.25 µs against a ``Counter``'s 1.36."""
    counts: dict[tuple[str, int], int] = {}
    for pending in batch:
        position = (pending.stream, pending.partition)
        counts[position] = counts.get(position, 0) + 1
    return counts


_SQLITE_APPEND = f'INSERT INTO {LogRecord.__tablename__} (stream, "partition", key, value, appended_at) VALUES (?, ?, ?, ?, ?)'


class EmbeddedLog(EventLog):
    """Group commit for the threads of a process; subclasses write a batch and read the log their database's way."""

    def __init__(self, engine: Engine, partitions: int, streams: tuple[str, ...]) -> None:
        self.engine = engine
        self.partitions = partitions
        self._queue: list[_Pending] = []
        self._queue_lock = threading.Lock()
        self._writer = threading.Lock()

    def append(self, stream: str, key: str, value: str) -> None:
        """Queue the record, then either find it committed by another thread's batch or commit the queue."""
        pending = _Pending(stream, partition_of(key, self.partitions), key, value)
        with self._queue_lock:
            self._queue.append(pending)
        with self._writer:
            if not pending.finished:  # still queued: this thread writes everything queued so far
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._commit(batch)
        if pending.error is not None:
            raise pending.error

    def _commit(self, batch: list[_Pending]) -> None:
        """Write ``batch`` in one transaction and mark every record finished, with its error if any."""
        written = False
        try:
            self._write(batch)
            written = True
        except (OperationalError, sqlite3.OperationalError) as error:
            for pending in batch:
                reason = getattr(error, "orig", error)
                pending.error = LogUnavailable(f"the event log database did not accept the record: {reason}")
                pending.error.__cause__ = error
        except Exception as error:  # noqa: BLE001 - handed to the caller whose record it is
            if len(batch) == 1:
                batch[0].error = error
            else:  # not the database being unavailable: give each record its own outcome
                for pending in batch:
                    self._commit([pending])
        finally:
            for pending in batch:
                if not pending.finished:
                    if not written and pending.error is None:  # interrupted: never report success
                        pending.error = LogUnavailable("the append was interrupted; nothing was recorded, retry the request")
                    pending.finished = True

    @abstractmethod
    def _write(self, batch: list[_Pending]) -> None:
        """Commit ``batch`` in one transaction, each partition's records in batch order."""


class CounterLog(EmbeddedLog):
    """Offsets from a counter row per partition, whose lock orders the partition's appends (any database with row locks)."""

    def __init__(self, engine: Engine, partitions: int, streams: tuple[str, ...]) -> None:
        super().__init__(engine, partitions, streams)
        self._create_partitions(streams)

    def _create_partitions(self, streams: tuple[str, ...]) -> None:
        with self.engine.begin() as connection:
            existing = {(stream, p) for stream, p in connection.execute(select(LogPartition.stream, LogPartition.partition))}
            missing = [
                {"stream": stream, "partition": p, "next_offset": 0}
                for stream in streams
                for p in range(self.partitions)
                if (stream, p) not in existing
            ]
            if missing:
                connection.execute(insert(LogPartition), missing)

    def _write(self, batch: list[_Pending]) -> None:
        """Core statements on a pooled connection: the ORM would triple the cost of a rank.

        Counter rows are advanced in sorted order, so two processes' batches never
        wait for each other's rows in opposite orders (PostgreSQL would abort one).
        """
        appended_at = time.time()
        with self.engine.begin() as connection:
            next_offset = {}
            for (stream, partition), count in sorted(_counts(batch).items()):
                end = connection.execute(_ADVANCE, {"of_stream": stream, "of_partition": partition, "count": count}).scalar_one()
                next_offset[(stream, partition)] = end - count
            rows = []
            for pending in batch:
                position = (pending.stream, pending.partition)
                offset = next_offset[position]
                next_offset[position] = offset + 1
                rows.append(
                    {"stream": pending.stream, "partition": pending.partition, "offset": offset,
                     "key": pending.key, "value": pending.value, "appended_at": appended_at}
                )
            connection.execute(_APPEND, rows)

    def trim(self, consumed: dict[Position, int], appended_before: float, limit: int) -> int:
        """Delete consumed records past their retention, oldest first, a short transaction at a time.

        Offsets grow with append time (roughly: the time is read before the counter
        row's lock, and hosts' clocks differ), so a partition's due records are mostly
        a prefix of what remains, and only that prefix is deleted: reading the oldest
        rows finds it without scanning the rest. A record dated later than those
        after it holds their deletion back until it is due itself, never the reverse.
        """
        deleted = 0
        writer = self.engine.execution_options(writer=True)
        for (stream, partition), below in sorted(consumed.items()):
            while deleted < limit:
                batch = min(TRIM_BATCH, limit - deleted)
                key = {"stream": stream, "partition": partition}
                with writer.begin() as connection:
                    oldest = connection.execute(_OLDEST, {**key, "below": below, "limit": batch}).all()
                    due = list(takewhile(lambda row: row.appended_at < appended_before, oldest))
                    if due:  # rowcount: another member may have deleted some of them meanwhile
                        deleted += connection.execute(_DELETE_THROUGH, {**key, "through": due[-1].offset}).rowcount
                if len(due) < batch:
                    break
        return deleted

    def subscribe(self, group: str, streams: tuple[str, ...]) -> Subscription:
        return CounterSubscription(self, streams)


class SQLiteLog(EmbeddedLog):
    """Offsets are the table's row ids, assigned by SQLite in commit order: an append is one insert."""

    def __init__(self, engine: Engine, partitions: int, streams: tuple[str, ...]) -> None:
        super().__init__(engine, partitions, streams)
        path = sqlite_file(engine)
        self._file = FileWriter(path) if path is not None else None

    def _write(self, batch: list[_Pending]) -> None:
        """Plain SQL on this process's own connection to the file; in-memory databases go through the engine."""
        appended_at = time.time()
        rows = [(pending.stream, pending.partition, pending.key, pending.value, appended_at) for pending in batch]
        if self._file is None:
            with self.engine.begin() as connection:
                connection.exec_driver_sql(_SQLITE_APPEND, rows)
            return
        self._file.write(_SQLITE_APPEND, rows)

    def trim(self, consumed: dict[Position, int], appended_before: float, limit: int) -> int:
        """Delete the log's oldest records while they are consumed and past retention, a short transaction at a time.

        Offsets follow commit order across the whole log, so the due records are
        mostly a prefix of it, and only that prefix is deleted. A record that is not
        due yet, or not consumed (a partition without a stored offset counts as
        unconsumed), holds back the deletion of every record after it, never the reverse.
        """
        deleted = 0
        writer = self.engine.execution_options(writer=True)
        while deleted < limit:
            batch = min(TRIM_BATCH, limit - deleted)
            with writer.begin() as connection:
                oldest = connection.execute(_OLDEST_IN_LOG, {"limit": batch}).all()
                due = list(
                    takewhile(
                        lambda row: row.appended_at < appended_before and row.offset < consumed.get((row.stream, row.partition), 0),
                        oldest,
                    )
                )
                if due:  # rowcount: another member may have deleted some of them meanwhile
                    deleted += connection.execute(_DELETE_THROUGH_OFFSET, {"through": due[-1].offset}).rowcount
            if len(due) < batch:
                break
        return deleted

    def close(self) -> None:
        if self._file is not None:
            with self._writer:
                self._file.close()

    def subscribe(self, group: str, streams: tuple[str, ...]) -> Subscription:
        return SQLiteSubscription(self, streams)


class _TableSubscription(Subscription):
    """Reads the log's table until records come or the timeout passes.

    Every member owns every partition: the pipeline's offset check keeps concurrent members correct.
    """

    def __init__(self, log: EmbeddedLog, streams: tuple[str, ...]) -> None:
        self.log = log
        self.streams = streams

    def assignment(self) -> set[Position]:
        return {(stream, p) for stream in self.streams for p in range(self.log.partitions)}

    def poll(self, positions: dict[Position, int], max_records: int, timeout: float) -> list[Record]:
        deadline = time.monotonic() + timeout
        while True:
            records = self._read(positions, max_records)
            if records or time.monotonic() >= deadline:
                return records
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    @abstractmethod
    def _read(self, positions: dict[Position, int], max_records: int) -> list[Record]: ...

    def close(self) -> None:
        """Nothing to release: reads use short-lived connections."""


class CounterSubscription(_TableSubscription):
    """One query per partition; the counter rows tell where each partition ends."""

    def _read(self, positions: dict[Position, int], max_records: int) -> list[Record]:
        per_partition = max(1, max_records // max(1, len(self.assignment())))
        records: list[Record] = []
        with self.log.engine.connect() as connection:
            for stream, partition in sorted(self.assignment()):
                start = positions.get((stream, partition), 0)
                rows = connection.execute(
                    _READ, {"stream": stream, "partition": partition, "start": start, "limit": per_partition}
                ).all()
                records.extend(Record(stream, partition, offset, key, value) for offset, key, value in rows)
        return records

    def caught_up(self, positions: dict[Position, int]) -> set[Position]:
        with self.log.engine.connect() as connection:
            ends = {(row.stream, row.partition): row.next_offset for row in connection.execute(select(LogPartition))}
        return {position for position in self.assignment() if positions.get(position, 0) >= ends.get(position, 0)}


class SQLiteSubscription(_TableSubscription):
    """One query reads every partition, in offset order, each from its own position.

    A partition in which nothing lands for a while keeps its position far behind the
    log's end, and the query must start at the lowest position; SQLite skips the
    other partitions' records below their positions in its own loop, but doing that
    on every poll would scan the same rows again and again. So the subscription
    remembers, per partition, the position it expects to be given next and the
    offset below which, from that position on, the partition has no record
    (``_clear``); while that position comes back, reading starts past it. After a
    restart, the first poll scans once from the lowest stored position.
    """

    def __init__(self, log: EmbeddedLog, streams: tuple[str, ...]) -> None:
        super().__init__(log, streams)
        self._clear: dict[Position, tuple[int, int]] = {}

    def _starts(self, positions: dict[Position, int]) -> dict[Position, int]:
        """Where each owned partition's unread records can begin."""
        starts = {}
        for position in self.assignment():
            given = positions.get(position, 0)
            expected, clear_below = self._clear.get(position, (-1, 0))
            starts[position] = max(given, clear_below) if given == expected else given
        return starts

    def _read(self, positions: dict[Position, int], max_records: int) -> list[Record]:
        starts = self._starts(positions)
        unread = or_(
            *(
                and_(LogRecord.stream == stream, LogRecord.partition == partition, LogRecord.offset >= start)
                for (stream, partition), start in sorted(starts.items())
            )
        )
        scan = _SCAN.where(LogRecord.offset >= min(starts.values()), unread)
        with self.log.engine.connect() as connection:  # one read transaction: both statements see the same log
            limit = max(1, max_records)
            rows = connection.execute(scan, {"limit": limit}).all()
            scanned_through = rows[-1].offset if len(rows) == limit else connection.execute(_LAST_OFFSET).scalar()
        records = [Record(stream, partition, offset, key, value) for offset, stream, partition, key, value in rows]
        if scanned_through is not None:  # every partition's records from its start through here were read
            next_position = {position: positions.get(position, 0) for position in starts}
            for record in records:
                next_position[(record.stream, record.partition)] = record.offset + 1
            self._clear = {position: (given, scanned_through + 1) for position, given in next_position.items()}
        return records

    def caught_up(self, positions: dict[Position, int]) -> set[Position]:
        starts = self._starts(positions)
        with self.log.engine.connect() as connection:
            last = {(stream, partition): offset for stream, partition, offset in connection.execute(_LAST_FROM, {"start": min(starts.values())})}
        return {position for position, start in starts.items() if last.get(position, -1) < start}
