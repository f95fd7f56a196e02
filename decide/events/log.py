"""The event-log interface shared by the embedded (SQL) and Kafka implementations.

The log is partitioned; a record's partition is a function of its key, equal in
every stream, so records about one event meet in one partition number. Consumers
do not commit offsets to the log: the pipeline stores them in SQL in the same
transaction as the state it derived, and hands them back as ``positions``. That
is what makes the pipeline's effect exactly-once on top of at-least-once delivery.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from decide.errors import Unavailable

Position = tuple[str, int]
"""(stream, partition)"""


@dataclass(frozen=True)
class Record:
    stream: str
    partition: int
    offset: int
    key: str
    value: str


class LogUnavailable(Unavailable):
    """The log cannot take the record now; nothing was acknowledged."""


class Subscription(ABC):
    """A consumer-group member's view of the log."""

    @abstractmethod
    def assignment(self) -> set[Position]:
        """The partitions this member owns now (changes when members join or leave)."""

    @abstractmethod
    def poll(self, positions: dict[Position, int], max_records: int, timeout: float) -> list[Record]:
        """Records at or after ``positions`` in the owned partitions, in offset order per partition.

        A position missing from ``positions`` starts at the beginning of the partition.
        """

    @abstractmethod
    def caught_up(self, positions: dict[Position, int]) -> set[Position]:
        """The owned partitions with no record at or after ``positions`` (its beginning, when absent) right now."""

    @abstractmethod
    def close(self) -> None: ...


class EventLog(ABC):
    partitions: int

    @abstractmethod
    def append(self, stream: str, key: str, value: str) -> None:
        """Durably append; return only once the record is safe (raise ``LogUnavailable`` otherwise)."""

    @abstractmethod
    def subscribe(self, group: str, streams: tuple[str, ...]) -> Subscription: ...

    def trim(self, consumed: dict[Position, int], appended_before: float, limit: int) -> int:
        """Delete up to ``limit`` records below the ``consumed`` offsets and appended before ``appended_before``,
        oldest first; returns how many. The default deletes nothing: a Kafka broker applies its own retention."""
        return 0

    def close(self) -> None:
        """Release connections; the default has none of its own."""
