"""Edges of the join rules (``decide.pipeline.joins``): each loop's own settings, window boundaries, what a closed join
carries, counts over a batch, watermarks, and the young-join index after many joins have left it."""

from __future__ import annotations

from decide.config import LoopConfig
from decide.events.log import Record
from decide.events.schemas import DECISIONS, REWARDS, Activation, Decision, Event, Reward, encode
from decide.pipeline.joins import Found, Join, Joins, close, decoded, is_due

CONFIGS = {
    "fast": LoopConfig(rewardWaitTime=10.0, activationTimeout=20.0, defaultReward=-1.0, rewardAggregation="earliest"),
    "slow": LoopConfig(rewardWaitTime=100.0, activationTimeout=200.0, defaultReward=7.0, rewardAggregation="sum"),
}
NOTHING_STORED = Found({}, set())


def config_of(loop: str | None) -> LoopConfig:
    """The loop's own settings; None (a loop not known) gets settings no test expects, so using it shows."""
    return CONFIGS.get(loop) or LoopConfig(rewardWaitTime=1000.0, activationTimeout=1000.0, defaultReward=99.0)


def decision(event_id: str, timestamp: float, loop: str = "slow", deferred: bool = False) -> Decision:
    return Decision(
        event_id=event_id, loop=loop, timestamp=timestamp, policy_version=1, context=[{"x": 1}],
        actions=[{"id": "a"}, {"id": "b"}], excluded=[], chosen="a", probabilities=[0.5, 0.5], deferred=deferred,
    )


def logged(events: list[Event], partition: int = 0, offsets: dict | None = None) -> list:
    offsets = {DECISIONS: 0, REWARDS: 0} if offsets is None else offsets
    records = []
    for event in events:
        stream = DECISIONS if isinstance(event, Decision) else REWARDS
        records.append(Record(stream, partition, offsets[stream], event.event_id, encode(event)))
        offsets[stream] += 1
    return decoded(records)


def closed_now(joins: Joins, watermark: float) -> dict:
    return {join.event_id: close(join, 500.0, config_of) for join in joins.take_due({0: watermark})}


def test_each_join_follows_its_own_loops_windows():
    joins = Joins()
    joins.fold(logged([
        Reward("orphan", 1.0, 0.0, "slow"),  # waits activationTimeout + rewardWaitTime of its loop: 300
        decision("decided", 0.0, "slow"),  # closes at 0 + 100
        decision("deferred", 0.0, "slow", deferred=True),
        Activation("deferred", 50.0, "slow"),  # closes at 50 + 100
        decision("unshown", 0.0, "slow", deferred=True),  # closes at 0 + 200
    ]), NOTHING_STORED, config_of)
    assert list(closed_now(joins, 99.0)) == []
    assert list(closed_now(joins, 100.0)) == ["decided"]
    assert list(closed_now(joins, 149.0)) == []
    assert list(closed_now(joins, 150.0)) == ["deferred"]
    assert list(closed_now(joins, 199.0)) == []
    assert list(closed_now(joins, 200.0)) == ["unshown"]
    assert list(closed_now(joins, 299.0)) == []
    assert list(closed_now(joins, 300.0)) == ["orphan"]


def test_a_reward_before_its_decision_waits_activation_timeout_plus_reward_wait_time():
    joins = Joins()
    joins.fold(logged([Reward("orphan", 1.0, 1.0, "fast")]), NOTHING_STORED, config_of)
    assert closed_now(joins, 30.9) == {}
    (example,) = closed_now(joins, 31.0).values()
    assert (example.reason, example.loop, example.reward_count, example.decision) == ("unmatched", "fast", 1, None)


def test_the_default_reward_sum_and_earliest_are_the_joins_own_loops():
    joins = Joins()
    joins.fold(logged([
        decision("quiet", 0.0, "slow"),
        decision("summed", 0.0, "slow"), Reward("summed", 2.0, 5.0, "slow"), Reward("summed", 3.0, 4.0, "slow"),
        decision("first", 0.0, "fast"), Reward("first", 2.0, 5.0, "fast"), Reward("first", 3.0, 4.0, "fast"),
    ]), NOTHING_STORED, config_of)
    closed = closed_now(joins, 1000.0)
    assert {event_id: (example.reason, example.reward) for event_id, example in closed.items()} == {
        "quiet": ("default", 7.0),
        "summed": ("observed", 5.0),
        "first": ("observed", 3.0),
    }


def test_a_reward_timestamped_exactly_at_the_close_counts():
    joins = Joins()
    joins.fold(logged([decision("e", 0.0, "fast"), Reward("e", 4.0, 10.0, "fast"), Reward("e", 8.0, 10.5, "fast")]),
               NOTHING_STORED, config_of)
    (example,) = closed_now(joins, 10.0).values()
    assert (example.reason, example.reward, example.reward_count) == ("observed", 4.0, 1)


def test_earliest_keeps_the_reward_logged_first_among_equally_early_ones():
    joins = Joins()
    joins.fold(logged([decision("e", 0.0, "fast"), Reward("e", 5.0, 3.0, "fast"), Reward("e", 2.0, 3.0, "fast")]),
               NOTHING_STORED, config_of)
    (example,) = closed_now(joins, 100.0).values()
    assert (example.reward, example.reward_count) == (5.0, 2)


def test_a_closed_join_carries_its_loop_decision_and_logged_text():
    joins = Joins()
    shown, unshown, quiet = decision("shown", 0.0), decision("unshown", 0.0, deferred=True), decision("quiet", 0.0)
    records = logged([shown, unshown, Reward("unshown", 1.0, 5.0, "slow"), quiet])
    texts = {record.key: record.value for record, _ in records if record.stream == DECISIONS}
    joins.fold(records, NOTHING_STORED, config_of)
    closed = closed_now(joins, 1000.0)
    deactivated = closed["unshown"]
    assert (deactivated.reason, deactivated.loop, deactivated.reward, deactivated.reward_count) == ("deactivated", "slow", None, 0)
    assert deactivated.decision == unshown and deactivated.decision_json == texts["unshown"]
    assert not deactivated.learnable
    default = closed["quiet"]
    assert (default.reason, default.loop, default.reward, default.reward_count) == ("default", "slow", 7.0, 0)
    assert default.decision == quiet and default.decision_json == texts["quiet"]
    assert closed["shown"].decision_json == texts["shown"]


def test_every_duplicate_and_late_reward_in_a_batch_is_counted_and_the_rest_still_joins():
    joins = Joins()
    counts = joins.fold(logged([decision("e", 0.0)]), NOTHING_STORED, config_of)
    reward = Reward("e", 1.0, 1.0, "slow")
    counts = joins.fold(logged([decision("e", 0.0), reward, reward, decision("e", 0.0), reward]), NOTHING_STORED, config_of)
    assert (counts.duplicates, counts.late_rewards) == (4, 0)
    done = Found({}, {"done"})
    counts = joins.fold(logged([
        Reward("done", 1.0, 1.0), decision("done", 0.0), Reward("done", 2.0, 1.0), decision("done", 0.0),
        decision("after", 0.0),
    ]), done, config_of)
    assert (counts.duplicates, counts.late_rewards) == (2, 2)
    assert set(joins.young) == {"e", "after"}


def test_event_time_is_the_latest_timestamp_read_per_stream_partition():
    joins = Joins()
    joins.fold(logged([decision("a", 5.0), decision("b", 3.0), Reward("a", 1.0, 2.0)], partition=1), NOTHING_STORED, config_of)
    joins.fold(logged([Reward("c", 1.0, 9.0)], partition=2), NOTHING_STORED, config_of)
    assert joins.event_time == {(DECISIONS, 1): 5.0, (REWARDS, 1): 2.0, (REWARDS, 2): 9.0}


def test_a_join_is_due_by_its_own_partitions_watermark_including_exactly_at_it():
    join = Join("e", "slow", 1, 0.0, 10.0)
    assert is_due(join, {0: 100.0, 1: 10.0})
    assert not is_due(join, {0: 100.0, 1: 9.0})
    assert not is_due(join, {0: 100.0})


def test_a_join_without_partition_goes_by_the_slowest_watermark_and_none_without_watermarks():
    legacy = Join("e", "slow", None, 0.0, 10.0)
    assert not is_due(legacy, {})
    assert not is_due(legacy, {0: 100.0, 1: 9.0})
    assert is_due(legacy, {0: 100.0, 1: 10.0})


def test_joins_left_young_after_many_others_closed_still_close_and_replay():
    joins = Joins()
    offsets = {DECISIONS: 0, REWARDS: 0}
    joins.fold(logged([decision(f"e{i}", float(i), "fast") for i in range(20)], offsets=offsets), NOTHING_STORED, config_of)
    joins.fold(logged([Reward("e19", 1.0, 19.5, "fast")], offsets=offsets), NOTHING_STORED, config_of)
    assert [join.event_id for join in joins.take_due({0: 28.0})] == [f"e{i}" for i in range(19)]
    # Most index entries now belong to joins that have left: the next cycles must still find the one left.
    assert joins.take_old({0: 28.0}, 100.0) == []
    assert joins.replay_from({(DECISIONS, 0): 20, (REWARDS, 0): 1}) == {(DECISIONS, 0): 19, (REWARDS, 0): 0}
    assert joins.take_due({0: 28.5}) == []
    (last,) = joins.take_due({0: 29.0})
    assert close(last, 30.0, config_of).reward == 1.0
    assert joins.young == {}
    assert joins.replay_from({(DECISIONS, 0): 20, (REWARDS, 0): 1}) == {(DECISIONS, 0): 20, (REWARDS, 0): 1}
