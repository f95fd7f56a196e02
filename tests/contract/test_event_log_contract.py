"""The event-log contract, one suite for every implementation (embedded on SQLite and PostgreSQL, Kafka).

What the pipeline relies on: records come back in append order within a
partition; a key lands in the same partition number in every stream; ``poll``
starts exactly at the positions it is given (the beginning where none is
given); polling again from the same positions gives the same records again
(at-least-once, the basis of crash recovery); a partition is caught up once
every record in it has been read (the basis of the join watermark); and the
group's members together own every partition, each member the same partition
numbers in every stream.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable

from decide.events.log import EventLog, Position, Record, Subscription
from decide.events.schemas import DECISIONS, REWARDS, STREAMS
from tests.contract.conftest import PARTITIONS

GROUP = "contract"


def fill(event_log: EventLog, count: int) -> list[tuple[str, str, str]]:
    """Append ``count`` records per stream over many keys; returns (stream, key, value) in append order."""
    appended = []
    for number in range(count):
        for stream in STREAMS:
            key, value = f"event-{number % 37}", f"{stream}-{number}"
            event_log.append(stream, key, value)
            appended.append((stream, key, value))
    return appended


def drain(subscription: Subscription, positions: dict[Position, int], expected: int, timeout: float = 30.0) -> list[Record]:
    """Poll the way the worker does, advancing ``positions``, until ``expected`` records came back."""
    records: list[Record] = []
    deadline = time.monotonic() + timeout
    while len(records) < expected and time.monotonic() < deadline:
        subscription.assignment()
        batch = subscription.poll(positions, 100, 0.2)
        for record in batch:
            positions[(record.stream, record.partition)] = record.offset + 1
        records.extend(batch)
    assert len(records) == expected, f"{len(records)} of {expected} records came back within {timeout:.0f}s"
    return records


def identity(record: Record) -> tuple[str, int, int]:
    return record.stream, record.partition, record.offset


def every_partition(position_stream: Callable[[str], str]) -> set[Position]:
    return {(position_stream(stream), p) for stream in STREAMS for p in range(PARTITIONS)}


def owning_everything(subscription: Subscription, everything: set[Position], timeout: float = 30.0) -> set[Position]:
    """The assignment once the member has joined (Kafka's group join takes a few polls)."""
    deadline = time.monotonic() + timeout
    while subscription.assignment() != everything and time.monotonic() < deadline:
        subscription.poll({}, 1, 0.1)
    return subscription.assignment()


def test_records_come_back_in_append_order_within_each_partition(event_log, position_stream):
    appended = fill(event_log, 60)
    subscription = event_log.subscribe(GROUP, STREAMS)
    records = drain(subscription, {}, len(appended))
    by_partition: dict[Position, list[Record]] = defaultdict(list)
    for record in records:
        by_partition[(record.stream, record.partition)].append(record)
    for (stream, partition), got in by_partition.items():
        offsets = [record.offset for record in got]
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
        sent = [value for s, key, value in appended if position_stream(s) == stream and value in {record.value for record in got}]
        assert [record.value for record in got] == sent, f"{stream}/{partition} out of order"
    assert sorted(record.value for record in records) == sorted(value for _, _, value in appended)
    subscription.close()


def test_a_key_has_the_same_partition_number_in_every_stream(event_log):
    fill(event_log, 40)
    subscription = event_log.subscribe(GROUP, STREAMS)
    partitions_of: dict[str, set[int]] = defaultdict(set)
    for record in drain(subscription, {}, 80):
        partitions_of[record.key].add(record.partition)
    assert all(len(numbers) == 1 for numbers in partitions_of.values()), partitions_of
    assert len({number for numbers in partitions_of.values() for number in numbers}) > 1, "keys spread over partitions"
    subscription.close()


def test_poll_starts_at_the_given_positions_and_at_the_beginning_where_none_is_given(event_log, position_stream):
    appended = fill(event_log, 40)
    subscription = event_log.subscribe(GROUP, STREAMS)
    everything = drain(subscription, {}, len(appended))
    offsets: dict[Position, list[int]] = defaultdict(list)
    for record in everything:
        offsets[(record.stream, record.partition)].append(record.offset)
    # Past the first two records of every decisions partition; offsets need not be dense, nor start at 0.
    skipped = {position: sorted(found)[2] for position, found in offsets.items() if position[0] == position_stream(DECISIONS)}
    rest = drain(subscription, dict(skipped), len(appended) - 2 * len(skipped))
    expected = {identity(record) for record in everything if record.offset >= skipped.get((record.stream, record.partition), 0)}
    assert {identity(record) for record in rest} == expected, "decisions from the positions, rewards (no position) from the start"
    subscription.close()


def test_polls_of_one_record_make_progress_past_partitions_that_stay_quiet(event_log, position_stream):
    """No rewards at all, and decisions in one partition: every other position stays where it began."""
    subscription = event_log.subscribe(GROUP, STREAMS)
    owning_everything(subscription, every_partition(position_stream))
    positions: dict[Position, int] = {}

    def poll_one() -> list[str]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            subscription.assignment()
            if records := subscription.poll(positions, 1, 0.2):
                for record in records:
                    positions[(record.stream, record.partition)] = record.offset + 1
                return [record.value for record in records]
        return []

    for number in range(5):
        event_log.append(DECISIONS, "busy", f"busy-{number}")
    assert [value for _ in range(5) for value in poll_one()] == [f"busy-{number}" for number in range(5)]
    event_log.append(DECISIONS, "busy", "new")
    assert poll_one() == ["new"]
    event_log.append(REWARDS, "quiet", "quiet")
    assert poll_one() == ["quiet"]
    subscription.close()


def test_polling_again_from_the_same_positions_gives_the_same_records(event_log):
    appended = fill(event_log, 30)
    subscription = event_log.subscribe(GROUP, STREAMS)
    first = drain(subscription, {}, len(appended))
    again = drain(subscription, {}, len(appended))
    assert sorted(first, key=identity) == sorted(again, key=identity)
    subscription.close()
    successor = event_log.subscribe(GROUP, STREAMS)
    assert sorted(drain(successor, {}, len(appended)), key=identity) == sorted(first, key=identity), "a successor reads the same log"
    successor.close()


def test_a_partition_is_caught_up_once_every_record_in_it_has_been_read(event_log, position_stream):
    subscription = event_log.subscribe(GROUP, STREAMS)
    everything = owning_everything(subscription, every_partition(position_stream))
    assert subscription.caught_up({}) == everything, "an empty log: nothing to read anywhere"
    event_log.append(DECISIONS, "only", "one")
    positions: dict[Position, int] = {}
    [record] = drain(subscription, positions, 1)
    written = (record.stream, record.partition)
    assert subscription.caught_up({}) == everything - {written}, "from the beginning, the record is still to read"
    assert subscription.caught_up(positions) == everything, "past it, nothing is"
    subscription.close()


def test_poll_waits_for_records_and_gives_up_after_its_timeout(event_log, position_stream):
    subscription = event_log.subscribe(GROUP, STREAMS)
    owning_everything(subscription, every_partition(position_stream))
    started = time.monotonic()
    assert subscription.poll({}, 10, 0.3) == []
    assert 0.2 <= time.monotonic() - started < 5
    event_log.append(DECISIONS, "late", "arrived")
    assert [record.value for record in drain(subscription, {}, 1)] == ["arrived"]
    subscription.close()


def test_the_members_of_a_group_own_every_partition_with_the_same_numbers_in_every_stream(event_log, position_stream):
    everything = every_partition(position_stream)
    first = event_log.subscribe(GROUP, STREAMS)
    assert owning_everything(first, everything) == everything
    second = event_log.subscribe(GROUP, STREAMS)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for member in (first, second):
            member.assignment()
            member.poll({}, 1, 0.1)
        owned = [first.assignment(), second.assignment()]
        if all(owned) and owned[0] | owned[1] == everything:
            break
    assert owned[0] | owned[1] == everything
    for member_owns in owned:
        assert member_owns, "every member gets partitions"
        numbers = {stream: {p for s, p in member_owns if s == position_stream(stream)} for stream in STREAMS}
        assert numbers[DECISIONS] == numbers[REWARDS]
    first.close()
    second.close()
