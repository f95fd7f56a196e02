"""The joiner finds the young joins to close and spill, and the offsets to replay from, through heaps rather than a
scan of all young joins: checked here cycle by cycle against that scan, over random traffic."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest
from sqlalchemy import select, text

from decide.config import LoopConfig
from decide.events.log import Position, Record
from decide.events.schemas import (
    DECISIONS,
    REWARDS,
    Activation,
    Decision,
    Event,
    Reward,
    encode,
)
from decide.pipeline.joiner import PENDING, Joiner
from decide.pipeline.joins import _YoungIndex, decoded
from decide.pipeline.learner import archive
from decide.store.db import make_engine, writer_sessions
from decide.store.models import Base

PARTITIONS = 4
SPILL_AFTER = 8.0
GRACE = 1.0
CONFIGS = {
    "default": LoopConfig(rewardWaitTime=20.0, activationTimeout=6.0),
    "short": LoopConfig(rewardWaitTime=4.0, activationTimeout=15.0),
}


def config_of(loop: str | None) -> LoopConfig:
    return CONFIGS[loop or "default"]


def decision(event_id: str, loop: str, timestamp: float, deferred: bool) -> Decision:
    return Decision(
        event_id=event_id, loop=loop, timestamp=timestamp, policy_version=1, context=[{"user": {"tier": "gold"}}],
        actions=[{"id": "a"}, {"id": "b"}], excluded=[], chosen="a", probabilities=[0.6, 0.4], deferred=deferred,
    )


@dataclass
class Log:
    """An in-memory log: per stream partition, records in offset order; an event's partition follows from its id."""

    records: dict[Position, list[Record]] = field(default_factory=dict)

    def append(self, event: Event) -> None:
        stream = DECISIONS if isinstance(event, Decision) else REWARDS
        position = (stream, int(event.event_id.removeprefix("e")) % PARTITIONS)
        held = self.records.setdefault(position, [])
        held.append(Record(stream, position[1], len(held), event.event_id, encode(event)))

    def poll(self, rng: random.Random, read: dict[Position, int], most: int) -> list[Record]:
        """Up to ``most`` records per position, interleaved at random but in offset order within each position."""
        queues = {position: held[read.get(position, 0):read.get(position, 0) + most] for position, held in self.records.items()}
        polled = []
        while any(queues.values()):
            queue = rng.choice([queue for queue in queues.values() if queue])
            polled.append(queue.pop(0))
        return polled


def plan_event(rng: random.Random, number: int, now: float) -> list[tuple[float, Event]]:
    """One event's records with the times they reach the log: out of order, rewards sometimes before the decision."""
    event_id, loop = f"e{number}", rng.choice(["default", "short"])
    decided = now + rng.uniform(-3.0, 1.0)
    deferred = rng.random() < 0.3
    planned: list[tuple[float, Event]] = []
    if rng.random() < 0.9:
        planned.append((decided + rng.uniform(0.0, 2.0), decision(event_id, loop, decided, deferred)))
        if rng.random() < 0.1:
            planned.append((decided + rng.uniform(0.0, 30.0), decision(event_id, loop, decided + 1.0, deferred)))
    if deferred and rng.random() < 0.7:
        activated = decided + rng.uniform(-1.0, 10.0)
        planned.append((activated + rng.uniform(0.0, 2.0), Activation(event_id, activated, loop)))
    for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
        rewarded = decided + rng.uniform(-2.0, 30.0)
        planned.append((rewarded + rng.uniform(0.0, 5.0), Reward(event_id, rng.random(), rewarded, loop)))
    return planned


def brute_watermark(watermarks: dict[int, float], partition: int | None) -> float:
    assert partition is not None, "young joins always know their partition"
    return watermarks.get(partition, float("-inf"))


def brute_replay(joiner: Joiner, read: dict[Position, int]) -> dict[Position, int]:
    positions = dict(read)
    for join in joiner.young.values():
        for stream, offset in join.first_offsets.items():
            if (stream, join.partition) in positions:
                positions[stream, join.partition] = min(positions[stream, join.partition], offset)
    return positions


def entries(index: _YoungIndex) -> int:
    groups: list[dict] = [index._close_at, index._first_seen, index._first_offset]
    return sum(len(heap) for heaps in groups for heap in heaps.values())


@pytest.mark.parametrize("seed", range(3))
def test_closing_spilling_and_replay_offsets_match_a_scan_of_every_young_join(tmp_path, seed):
    rng = random.Random(seed)
    engine = make_engine(f"sqlite:///{tmp_path / 'joins.db'}")
    Base.metadata.create_all(engine)
    sessions = writer_sessions(engine)
    with sessions.begin() as session:
        legacy = {"loop": "default", "partition": None, "decision": None, "activated_at": None, "rewards": "[]"}
        session.execute(PENDING.insert(), [{**legacy, "event_id": "legacy1", "first_seen": 0.0, "close_at": 30.0}])

    log, joiner = Log(), Joiner(SPILL_AFTER)
    planned: list[tuple[float, Event]] = []
    read: dict[Position, int] = {}
    replay: dict[Position, int] = {}
    clock, events, cycles_with = 1000.0, 0, {"closing": 0, "spilling": 0, "decided after a reward": 0}
    for _ in range(150):
        clock += rng.uniform(0.2, 2.0)
        for _ in range(rng.randint(0, 12)):
            planned += plan_event(rng, events, clock)
            events += 1
        arrived = [event for at, event in planned if at <= clock]
        planned = [(at, event) for at, event in planned if at > clock]
        rng.shuffle(arrived)
        for event in arrived:
            log.append(event)
        if rng.random() < 0.03:
            joiner.forget()
            read = dict(replay)
        records = log.poll(rng, read, rng.choice([1, 5, 50]))
        for record in records:
            read[record.stream, record.partition] = record.offset + 1

        with sessions.begin() as session:
            logged = decoded(records)
            joiner.fold(logged, joiner.look_up(session, logged), config_of)
            watermarks = {}
            for partition in range(PARTITIONS):
                streams = [(stream, partition) for stream in (DECISIONS, REWARDS)]
                caught_up = all(read.get(position, 0) == len(log.records.get(position, [])) for position in streams)
                reached = clock if caught_up else min(joiner.event_time.get(position, float("-inf")) for position in streams)
                if rng.random() < 0.9:
                    watermarks[partition] = reached - GRACE

            young = list(joiner.young.values())
            closing = [join.event_id for join in young if join.close_at <= brute_watermark(watermarks, join.partition)]
            staying = [join for join in young if join.event_id not in closing]
            spilling = [join.event_id for join in staying if join.first_seen <= brute_watermark(watermarks, join.partition) - SPILL_AFTER]
            kept = [join.event_id for join in staying if join.event_id not in spilling]

            closed = joiner.close_due(session, watermarks, clock, config_of)
            assert [example.event_id for example in closed[: len(closing)]] == closing
            assert not {example.event_id for example in closed[len(closing):]} & {join.event_id for join in young}
            assert list(joiner.young) == kept
            spilled = session.scalars(select(PENDING.c.event_id).where(PENDING.c.event_id.in_(spilling)).order_by(text("rowid")))
            assert list(spilled) == spilling, "spilled joins are written in the order they were opened"
            replay = joiner.replay_from(read)
            assert replay == brute_replay(joiner, read)
            assert entries(joiner._index) <= 2 * _YoungIndex.LIVE_PER_JOIN * len(young), "stale entries are dropped"
            if rng.random() < 0.8:
                archive(session, closed, learned=False)
        cycles_with["closing"] += bool(closing)
        cycles_with["spilling"] += bool(spilling)
        cycles_with["decided after a reward"] += any(next(iter(j.first_offsets)) == REWARDS and j.decision_json for j in young)
    assert all(count > 10 for count in cycles_with.values()), cycles_with
