"""The embedded event log: an append-only, partitioned log in the service's own SQL database.

Appends take the partition's counter row lock for the length of a short
transaction, so offsets are assigned and become visible in the same order on
SQLite and PostgreSQL alike: a consumer reading past offset n never later finds
a record it skipped.
"""

from __future__ import annotations

import time
import zlib

from sqlalchemy import Engine, bindparam, insert, select, update
from sqlalchemy.exc import OperationalError

from decide.events.log import EventLog, LogUnavailable, Position, Record, Subscription
from decide.store.models import LogPartition, LogRecord


_NEXT_OFFSET = (
    update(LogPartition)
    .where(LogPartition.stream == bindparam("of_stream"), LogPartition.partition == bindparam("of_partition"))
    .values(next_offset=LogPartition.next_offset + 1)
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


def partition_of(key: str, partitions: int) -> int:
    """Stable key → partition, identical for every stream."""
    return zlib.crc32(key.encode()) % partitions


class EmbeddedLog(EventLog):
    def __init__(self, engine: Engine, partitions: int, streams: tuple[str, ...]) -> None:
        self.engine = engine
        self.partitions = partitions
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

    def append(self, stream: str, key: str, value: str) -> None:
        """Core statements on a pooled connection: the ORM session would triple the cost of a rank."""
        partition = partition_of(key, self.partitions)
        try:
            with self.engine.begin() as connection:
                offset = connection.execute(_NEXT_OFFSET, {"of_stream": stream, "of_partition": partition}).scalar_one() - 1
                connection.execute(
                    _APPEND,
                    {"stream": stream, "partition": partition, "offset": offset, "key": key, "value": value, "appended_at": time.time()},
                )
        except OperationalError as error:
            raise LogUnavailable(f"the event log database did not accept the record: {error.orig}") from error

    def subscribe(self, group: str, streams: tuple[str, ...]) -> Subscription:
        return EmbeddedSubscription(self, streams)


class EmbeddedSubscription(Subscription):
    """Every member owns every partition: the pipeline's offset check keeps concurrent members correct."""

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

    def close(self) -> None:
        """Nothing to release: reads use short-lived sessions."""
