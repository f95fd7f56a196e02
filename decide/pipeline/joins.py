"""Join decisions with their rewards by event id, with Personalizer's semantics: the join model and its rules.

A join window opens when a decision is activated (at rank time unless deferred)
and closes ``rewardWaitTime`` later. Rewards timestamped inside the window are
aggregated (earliest or sum); a window with none gets the default reward. A
deferred decision never activated within ``activationTimeout`` closes as
``deactivated`` and is not learned. Rewards that come before their decision wait
for it; if it never comes they close as ``unmatched``. Each record's ``id`` makes
a redelivered record count once.

Windows are judged on the events' own timestamps against a per-partition
watermark (see ``decide.pipeline.worker``), so replaying the same records gives
the same joins whatever the processing speed, and a backlog never closes a join
before its rewards have been read.

Young joins live in memory (``Joins``): most close within seconds and never touch
the database. Each cycle finds the young joins to close or spill, and the offsets
to store, through heaps kept up as joins open and change (``_YoungIndex``): its
cost follows the joins that change, not the thousands held. Pure: what the
database holds comes in as ``Found``, and ``decide.pipeline.joiner`` keeps the
older joins in ``pending_joins`` and archives the closed ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from heapq import heappop, heappush
from itertools import count

from decide.config import LoopConfig
from decide.events.log import Position, Record
from decide.events.schemas import (
    STREAMS,
    Activation,
    Decision,
    DecisionHeader,
    JoinedEvent,
    JoinReason,
    Reward,
    decode,
    decode_for_join,
)

ConfigLookup = Callable[[str | None], LoopConfig]


@dataclass(frozen=True)
class JoinedExample:
    event_id: str
    loop: str | None
    decision: Decision | None
    reward: float | None
    reward_count: int
    reason: JoinReason
    closed_at: float
    decision_json: str | None = None
    """The decision as logged, archived as is rather than encoded again."""

    @property
    def learnable(self) -> bool:
        return self.reason in ("observed", "default")


@dataclass
class JoinCounts:
    """What a batch did, for metrics: duplicates and late rewards are counted, never applied."""

    duplicates: int = 0
    late_rewards: int = 0


@dataclass(frozen=True)
class Found:
    """What the database holds of a batch's events not in memory (see ``decide.pipeline.joiner.Joiner.look_up``)."""

    stored: dict[str, Join]
    """Joins in ``pending_joins``, by event id."""
    closed: set[str]
    """Event ids already archived in ``examples``."""

    @property
    def unpartitioned(self) -> bool:
        """Whether a stored join has no partition (written before revision 0003): any member may close those."""
        return any(join.partition is None for join in self.stored.values())


@dataclass
class Join:
    """One event's decision, activation and rewards so far."""

    event_id: str
    loop: str | None
    partition: int | None
    first_seen: float
    close_at: float
    decision_json: str | None = None
    """The decision as logged. Kept as text, not parsed: tens of thousands of parsed decisions held
    across cycles would make Python's cyclic garbage collector cost four times the parsing."""
    activated_at: float | None = None
    rewards: list[list] = field(default_factory=list)
    """[record id, timestamp, value] of each reward."""
    first_offsets: dict[str, int] = field(default_factory=dict)
    """Per stream, the offset of this join's first record: where a replay must start to rebuild it."""


def decoded(records: Iterable[Record]) -> list[tuple[Record, JoinedEvent]]:
    """Each record with its event, a decision as its header: joins keep the logged text and parse it when they close.

    The worker decodes before its transaction opens: on SQLite that transaction
    holds the database's only write lock, which every API append waits for.
    """
    return [(record, decode_for_join(record.value)) for record in records]


class Joins:
    """The joins of the partitions one worker owns, as far as memory holds them: young ones, and this cycle's stored ones."""

    def __init__(self) -> None:
        self.young: dict[str, Join] = {}
        self.event_time: dict[Position, float] = {}
        """Per stream partition, the latest event timestamp read: how far its records have got."""
        self.stored: dict[str, Join] = {}
        """Joins found stored for this cycle's records (see ``Found``): written back or closed at the cycle's end."""
        self._index = _YoungIndex(self.young)

    def forget(self) -> None:
        """Drop everything in memory; the records are read again from the stored offsets."""
        self.young.clear()
        self._index.clear()
        self.event_time.clear()
        self.stored.clear()

    def fold(self, logged: Sequence[tuple[Record, JoinedEvent]], found: Found, config_of: ConfigLookup) -> JoinCounts:
        """Fold logged records, with their events (see ``decoded``), into the joins; a decision is kept as it was logged.

        ``found`` is what the database holds of the same records, read since the database last changed.
        """
        self.stored = found.stored
        counts = JoinCounts()
        for record, event in logged:
            position = (record.stream, record.partition)
            self.event_time[position] = max(self.event_time.get(position, event.timestamp), event.timestamp)
            if event.event_id in found.closed:
                counts.duplicates += isinstance(event, DecisionHeader)
                counts.late_rewards += isinstance(event, Reward)
                continue
            join = self.young.get(event.event_id) or self.stored.get(event.event_id)
            if join is None:
                join = self.young[event.event_id] = _open(event, record.partition, config_of)
            join.partition = record.partition
            join.first_offsets.setdefault(record.stream, record.offset)
            close_at = join.close_at
            if isinstance(event, DecisionHeader):
                counts.duplicates += not _decide(join, event, record.value, config_of)
            elif isinstance(event, Reward):
                counts.duplicates += not _add_reward(join, event)
            else:
                _activate(join, event, config_of)
            if event.event_id in self.young:
                self._index.update(join, record, close_at)
        return counts

    def take_due(self, watermarks: dict[int, float]) -> list[Join]:
        """Remove from memory and return, in opening order, the young joins whose window ended by their watermark."""
        return self._index.take_due(watermarks)

    def take_old(self, watermarks: dict[int, float], spill_after: float) -> list[Join]:
        """Remove from memory and return, in opening order, the young joins first seen ``spill_after`` before their watermark."""
        return self._index.take_old(watermarks, spill_after)

    def replay_from(self, read: dict[Position, int]) -> dict[Position, int]:
        """Offsets to store: where reading must resume after a crash so that every young join is rebuilt."""
        return {position: min(offset, self._index.first_offset(position, offset)) for position, offset in read.items()}


def is_due(join: Join, watermarks: dict[int, float]) -> bool:
    """Whether ``join``'s window ended by its partition's watermark."""
    return join.close_at <= _watermark(watermarks, join.partition)


def _open(event: JoinedEvent, partition: int, config_of: ConfigLookup) -> Join:
    config = config_of(event.loop)
    close_at = event.timestamp + config.activationTimeout + config.rewardWaitTime
    return Join(event.event_id, event.loop, partition, event.timestamp, close_at)


class _YoungIndex:
    """The young joins ordered by close time and first record, so that a cycle finds the ones to close or spill,
    and the offsets to replay from, in time proportional to the joins that change rather than to all those held.

    Per partition, min-heaps of (close_at, event id) and (first_seen, event id); per stream partition, of (first
    offset, event id). A record's partition is the same in every stream (see ``decide.events.log``), so a join stays
    in its partition's heaps. Entries are never removed in place: one is stale once its join has left ``young`` or
    its key has changed (close_at moves when a decision or activation comes after a reward opened the join; the new
    one is pushed then), and is dropped on reaching the top. Stale entries that take long to get there (a spilled
    join's close time, minutes away) are dropped by rebuilding the heaps when they could outnumber the live ones.
    """

    LIVE_PER_JOIN = 2 + len(STREAMS)
    """Most live entries one young join has: its close time, its first timestamp, and a first offset per stream."""

    def __init__(self, young: dict[str, Join]) -> None:
        self._young = young
        self._order: dict[str, int] = {}
        """Each young join's place in ``young``'s (opening) order. Joins are closed and spilled in that order, as a scan
        of ``young`` gave them, so the learner and ``pending_joins`` see the same sequence."""
        self._opened = count()
        self._close_at: dict[int | None, list[tuple[float, str]]] = {}
        self._first_seen: dict[int | None, list[tuple[float, str]]] = {}
        self._first_offset: dict[Position, list[tuple[int, str]]] = {}

    def clear(self) -> None:
        self._order.clear()
        self._close_at.clear()
        self._first_seen.clear()
        self._first_offset.clear()

    def update(self, join: Join, record: Record, close_at: float) -> None:
        """Index a young join that ``record`` opened or changed; ``close_at`` is its close time before the record."""
        if join.event_id not in self._order:
            self._add(join)
            return
        if join.close_at != close_at:
            _push(self._close_at, join.partition, join.close_at, join.event_id)
        if join.first_offsets[record.stream] == record.offset:
            _push(self._first_offset, (record.stream, join.partition), record.offset, join.event_id)

    def _add(self, join: Join) -> None:
        self._order[join.event_id] = next(self._opened)
        _push(self._close_at, join.partition, join.close_at, join.event_id)
        _push(self._first_seen, join.partition, join.first_seen, join.event_id)
        for stream, offset in join.first_offsets.items():
            _push(self._first_offset, (stream, join.partition), offset, join.event_id)

    def take_due(self, watermarks: dict[int, float]) -> list[Join]:
        """Remove from ``young`` and return, in its order, the joins whose close time has passed their watermark."""
        self._drop_stale()
        return self._take(self._close_at, lambda partition: _watermark(watermarks, partition), lambda join: join.close_at)

    def take_old(self, watermarks: dict[int, float], spill_after: float) -> list[Join]:
        """Remove from ``young`` and return, in its order, the joins first seen ``spill_after`` before their watermark."""
        return self._take(
            self._first_seen, lambda partition: _watermark(watermarks, partition) - spill_after, lambda join: join.first_seen
        )

    def _take(
        self, heaps: dict[int | None, list[tuple[float, str]]], limit_of: Callable[[int | None], float],
        key: Callable[[Join], float],
    ) -> list[Join]:
        taken: list[tuple[int, Join]] = []
        for partition, heap in heaps.items():
            limit = limit_of(partition)
            while heap and heap[0][0] <= limit:
                value, event_id = heappop(heap)
                join = self._young.get(event_id)
                if join is not None and key(join) == value:
                    taken.append((self._order.pop(event_id), join))
                    del self._young[event_id]
        taken.sort()
        return [join for _, join in taken]

    def first_offset(self, position: Position, default: int) -> int:
        """The least first offset at ``position`` of the young joins, or ``default`` where none was read there."""
        heap = self._first_offset.get(position)
        while heap:
            offset, event_id = heap[0]
            join = self._young.get(event_id)
            if join is not None and join.first_offsets.get(position[0]) == offset:
                return offset
            heappop(heap)
        return default

    def _drop_stale(self) -> None:
        """Rebuild the heaps once stale entries could outnumber live ones: amortized, a constant per entry pushed."""
        groups: list[dict] = [self._close_at, self._first_seen, self._first_offset]
        if sum(len(heap) for heaps in groups for heap in heaps.values()) > 2 * self.LIVE_PER_JOIN * len(self._young):
            self.clear()
            for join in self._young.values():
                self._add(join)


def _push(heaps: dict, group: object, key: float, event_id: str) -> None:
    heappush(heaps.setdefault(group, []), (key, event_id))


def _watermark(watermarks: dict[int, float], partition: int | None) -> float:
    """A partition's watermark; joins stored before partitions were recorded go by the slowest owned partition."""
    if partition is None:
        return min(watermarks.values(), default=float("-inf"))
    return watermarks.get(partition, float("-inf"))


def _decide(join: Join, decision: DecisionHeader, text: str, config_of: ConfigLookup) -> bool:
    if join.decision_json is not None:
        return False
    config = config_of(decision.loop)
    join.loop = decision.loop
    join.decision_json = text
    if not decision.deferred:
        join.activated_at = decision.timestamp
    elif join.activated_at is not None and join.activated_at > decision.timestamp + config.activationTimeout:
        join.activated_at = None  # an activation read before its decision, but sent after the decision's timeout
    if join.activated_at is not None:
        join.close_at = join.activated_at + config.rewardWaitTime
    else:
        join.close_at = decision.timestamp + config.activationTimeout
    return True


def _activate(join: Join, activation: Activation, config_of: ConfigLookup) -> None:
    """Activate a deferred decision; one sent after the decision's ``activationTimeout`` (``close_at`` until then) is too late.

    Judged on the activation's timestamp, as rewards are on theirs, so a slow worker never activates a late one.
    """
    if join.activated_at is not None or (join.decision_json is not None and activation.timestamp > join.close_at):
        return
    join.activated_at = activation.timestamp
    if join.decision_json is not None:
        join.close_at = activation.timestamp + config_of(join.loop).rewardWaitTime


def _add_reward(join: Join, reward: Reward) -> bool:
    if any(record_id == reward.id for record_id, _, _ in join.rewards):
        return False
    join.rewards.append([reward.id, reward.timestamp, reward.value])
    return True


def close(join: Join, now: float, config_of: ConfigLookup) -> JoinedExample:
    if join.decision_json is None:
        return JoinedExample(join.event_id, join.loop, None, None, len(join.rewards), "unmatched", now)
    decision = decode(join.decision_json)
    if join.activated_at is None:
        return JoinedExample(join.event_id, join.loop, decision, None, 0, "deactivated", now, join.decision_json)
    config = config_of(join.loop)
    in_window = [(ts, value) for _, ts, value in join.rewards if ts <= join.close_at]
    if not in_window:
        return JoinedExample(join.event_id, join.loop, decision, config.defaultReward, 0, "default", now, join.decision_json)
    if config.rewardAggregation == "sum":
        value = float(sum(value for _, value in in_window))
    else:
        value = min(in_window, key=lambda pair: pair[0])[1]
    return JoinedExample(join.event_id, join.loop, decision, value, len(in_window), "observed", now, join.decision_json)
