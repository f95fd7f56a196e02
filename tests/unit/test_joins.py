"""The join rules on their own, without a database: windows, aggregation, deferred activation, unmatched rewards."""

from __future__ import annotations

import subprocess
import sys

from decide.config import LoopConfig
from decide.events.log import Record
from decide.events.schemas import (
    DECISIONS,
    REWARDS,
    Activation,
    Decision,
    Event,
    Reward,
    encode,
)
from decide.pipeline.joins import Found, Joins, close, decoded

CONFIG = LoopConfig(rewardWaitTime=10.0, activationTimeout=20.0, defaultReward=-1.0, rewardAggregation="sum")
NOTHING_STORED = Found({}, set())


def config_of(loop: str | None) -> LoopConfig:
    return CONFIG


def decision(event_id: str, timestamp: float, deferred: bool = False) -> Decision:
    return Decision(
        event_id=event_id, loop="l", timestamp=timestamp, policy_version=1, context=[{"x": 1}],
        actions=[{"id": "a"}, {"id": "b"}], excluded=[], chosen="a", probabilities=[0.5, 0.5], deferred=deferred,
    )


def logged(events: list[Event]) -> list[tuple[Record, Event]]:
    """Each event as a record of partition 0, decisions and rewards on their own streams."""
    offsets = {DECISIONS: 0, REWARDS: 0}
    records = []
    for event in events:
        stream = DECISIONS if isinstance(event, Decision) else REWARDS
        records.append(Record(stream, 0, offsets[stream], event.event_id, encode(event)))
        offsets[stream] += 1
    return decoded(records)


def test_the_pure_join_rules_close_each_kind_of_join():
    joins = Joins()
    events: list[Event] = [
        Reward("early", 2.0, 0.5, "l"),  # before its decision, inside the window: counted
        decision("early", 1.0),
        Reward("early", 3.0, 5.0, "l"),
        Reward("early", 7.0, 11.5, "l"),  # after the window: not counted
        decision("quiet", 1.0),
        decision("deferred", 1.0, deferred=True),
        decision("shown", 1.0, deferred=True),
        Activation("shown", 4.0, "l"),
        Reward("shown", 1.5, 13.0, "l"),
        Reward("orphan", 1.0, 2.0, "l"),
    ]
    counts = joins.fold(logged(events), NOTHING_STORED, config_of)
    assert (counts.duplicates, counts.late_rewards) == (0, 0)
    assert joins.take_due({0: 10.9}) == []
    closed = {join.event_id: close(join, 99.0, config_of) for join in joins.take_due({0: 100.0})}
    assert {event_id: (example.reason, example.reward) for event_id, example in closed.items()} == {
        "early": ("observed", 5.0),
        "quiet": ("default", -1.0),
        "deferred": ("deactivated", None),
        "shown": ("observed", 1.5),
        "orphan": ("unmatched", None),
    }
    assert joins.young == {}


def test_a_redelivered_record_counts_once_and_a_closed_event_is_a_late_duplicate():
    joins = Joins()
    reward = Reward("e", 1.0, 2.0, "l")
    counts = joins.fold(logged([decision("e", 1.0), reward, reward]), NOTHING_STORED, config_of)
    assert counts.duplicates == 1
    counts = joins.fold(logged([Reward("done", 1.0, 2.0, "l")]), Found({}, {"done"}), config_of)
    assert counts.late_rewards == 1 and "done" not in joins.young


def test_the_join_rules_need_no_database():
    code = "import sys, decide.pipeline.joins; assert 'sqlalchemy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_an_activation_sent_after_the_activation_timeout_is_too_late_in_whatever_order_it_is_read():
    joins = Joins()
    events: list[Event] = [
        decision("late", 1.0, deferred=True),
        Activation("late", 21.5, "l"),  # the timeout ended at 1 + 20
        Activation("early-read", 30.0, "l"),  # read before its decision, sent after its timeout
        decision("early-read", 5.0, deferred=True),
        decision("in-time", 1.0, deferred=True),
        Activation("in-time", 20.5, "l"),
        Reward("in-time", 2.0, 25.0, "l"),
        decision("at-the-end", 1.0, deferred=True),
        Activation("at-the-end", 21.0, "l"),  # exactly when the timeout ends: still in time
        Activation("read-first", 6.0, "l"),  # read before its decision, sent within its timeout
        decision("read-first", 5.0, deferred=True),
        Activation("read-first-at-the-end", 25.0, "l"),
        decision("read-first-at-the-end", 5.0, deferred=True),
    ]
    joins.fold(logged(events), NOTHING_STORED, config_of)
    closed = {join.event_id: close(join, 99.0, config_of) for join in joins.take_due({0: 100.0})}
    assert {event_id: (example.reason, example.reward) for event_id, example in closed.items()} == {
        "late": ("deactivated", None),
        "early-read": ("deactivated", None),
        "in-time": ("observed", 2.0),
        "at-the-end": ("default", -1.0),
        "read-first": ("default", -1.0),
        "read-first-at-the-end": ("default", -1.0),
    }
