"""The worker: one consumer-group member that joins and learns, exactly once in effect.

Each cycle polls records from the owned partitions, then in one transaction
checks that the stored offsets are still where it read from (another member may
have moved them), folds the records into the joins, closes due joins, learns,
and stores the new offsets. A crash anywhere before the commit leaves the
database as it was, and the records are read again.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from sqlalchemy import select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from decide.config import LoopConfig, Settings
from decide.events.log import EventLog, Position, Record
from decide.events.schemas import STREAMS
from decide.pipeline.joiner import JoinCounts, Joiner
from decide.pipeline.learner import Learner, LearnedVersion
from decide.pipeline.metrics import PipelineMetrics
from decide.store import queries
from decide.store.models import ConsumerOffset

log = logging.getLogger(__name__)

GROUP = "decide-pipeline"


@dataclass
class CycleResult:
    records: int = 0
    closed: int = 0
    versions: list[LearnedVersion] = field(default_factory=list)
    counts: JoinCounts = field(default_factory=JoinCounts)
    conflict: bool = False
    closed_by_reason: Counter[str] = field(default_factory=Counter)


class Worker:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        event_log: EventLog,
        settings: Settings,
        clock: Callable[[], float] = time.time,
        metrics: PipelineMetrics | None = None,
    ) -> None:
        self.sessions = sessions
        self.subscription = event_log.subscribe(GROUP, STREAMS)
        self.settings = settings
        self.clock = clock
        self.learner = Learner()
        self.metrics = metrics or PipelineMetrics(CollectorRegistry())

    def cycle(self, timeout: float = 0.2) -> CycleResult:
        """Poll once and commit what the records and the clock imply."""
        started = time.perf_counter()
        result = self._cycle(timeout)
        self.metrics.cycle_seconds.observe(time.perf_counter() - started)
        self.metrics.records.inc(result.records)
        self.metrics.duplicates.inc(result.counts.duplicates)
        self.metrics.late_rewards.inc(result.counts.late_rewards)
        self.metrics.conflicts.inc(result.conflict)
        for reason, count in result.closed_by_reason.items():
            self.metrics.examples.labels(reason).inc(count)
        for learned in result.versions:
            self.metrics.versions.labels(learned.loop).inc()
        return result

    def _cycle(self, timeout: float) -> CycleResult:
        owned = self.subscription.assignment()
        with self.sessions() as session:
            positions = _offsets(session, owned)
        records = self.subscription.poll(positions, self.settings.worker_batch, timeout)
        try:
            with self.sessions.begin() as session:
                if _offsets(session, owned, lock=True) != positions:
                    return CycleResult(conflict=True)
                configs = _ConfigCache(session, self.settings.default_loop)
                joiner = Joiner(configs.get)
                counts = joiner.apply(session, (record.value for record in records))
                closed = joiner.close_due(session, self.clock() - self.settings.join_grace)
                versions = self.learner.learn(session, closed, self.clock())
                _store_offsets(session, positions, records)
        except IntegrityError as error:
            log.warning("another member stored the same rows first, reading again: %s", error.orig)
            return CycleResult(conflict=True)
        return CycleResult(len(records), len(closed), versions, counts, closed_by_reason=Counter(e.reason for e in closed))

    def run(self, should_stop: Callable[[], bool], on_cycle: Callable[[CycleResult], None] = lambda result: None) -> None:
        while not should_stop():
            started = time.monotonic()
            result = self.cycle()
            if result.records < self.settings.worker_batch:
                time.sleep(max(0.0, self.settings.worker_interval - (time.monotonic() - started)))
            on_cycle(result)
            for learned in result.versions:
                log.info("loop %s: version %d learned %d examples", learned.loop, learned.version, learned.examples)

    def close(self) -> None:
        self.subscription.close()


class _ConfigCache:
    """Loop configurations for one cycle; unknown loops fall back to defaults so no event is dropped."""

    def __init__(self, session: Session, default_loop: str) -> None:
        self.session = session
        self.default_loop = default_loop
        self.cache: dict[str, LoopConfig] = {}

    def get(self, loop: str | None) -> LoopConfig:
        name = loop or self.default_loop
        if name not in self.cache:
            try:
                self.cache[name] = queries.config_of(queries.current(self.session, name))
            except queries.LoopNotFound:
                self.cache[name] = LoopConfig()
        return self.cache[name]


def _offsets(session: Session, owned: set[Position], lock: bool = False) -> dict[Position, int]:
    """Only the owned partitions' rows, so members owning other partitions never wait for this one."""
    query = select(ConsumerOffset).where(
        ConsumerOffset.group == GROUP, tuple_(ConsumerOffset.stream, ConsumerOffset.partition).in_(sorted(owned))
    )
    rows = session.scalars(query.with_for_update() if lock else query)
    return {(row.stream, row.partition): row.next_offset for row in rows}


def _store_offsets(session: Session, positions: dict[Position, int], records: list[Record]) -> None:
    advanced: dict[Position, int] = {}
    for record in records:
        position = (record.stream, record.partition)
        advanced[position] = max(advanced.get(position, 0), record.offset + 1)
    for (stream, partition), offset in advanced.items():
        if (stream, partition) in positions:
            row = session.get(ConsumerOffset, (GROUP, stream, partition))
            row.next_offset = offset
        else:
            session.add(ConsumerOffset(group=GROUP, stream=stream, partition=partition, next_offset=offset))
