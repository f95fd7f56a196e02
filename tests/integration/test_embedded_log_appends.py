"""Group-committed appends to the embedded log: concurrent callers, several processes, failures.

Every caller must return only once its own record is committed, offsets must stay
dense and ordered (per partition on PostgreSQL, across the log on SQLite, whose
offsets are row ids), and no caller may see success for a record that was not
written.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
import warnings
from collections import defaultdict

import pytest
from sqlalchemy import text

from decide.events.embedded import EmbeddedLog, SQLiteLog, open_embedded_log
from decide.events.log import LogUnavailable
from decide.events.schemas import DECISIONS, REWARDS, STREAMS
from decide.store import sqlite
from decide.store.db import make_engine, migrate

PARTITIONS = 4


@pytest.fixture
def log(database_url: str):
    migrate(database_url)
    engine = make_engine(database_url)
    event_log = open_embedded_log(engine, PARTITIONS, STREAMS)
    yield event_log
    event_log.close()
    engine.dispose()


def stored(event_log: EmbeddedLog) -> list[tuple[str, int, int, str, str]]:
    with event_log.engine.connect() as connection:
        rows = connection.execute(text('SELECT stream, "partition", "offset", key, value FROM event_log ORDER BY 1, 2, 3'))
        return [tuple(row) for row in rows]


def assert_dense_and_ordered(rows, writers_order: dict[str, list[str]], log: EmbeddedLog) -> None:
    """Offsets 0..n-1 in every partition (on SQLite, 1..n across the log), each writer's records in the order it appended them."""
    if isinstance(log, SQLiteLog):
        assert sorted(offset for _, _, offset, _, _ in rows) == list(range(1, len(rows) + 1))
    else:
        by_partition = defaultdict(list)
        for stream, partition, offset, _, _ in rows:
            by_partition[(stream, partition)].append(offset)
        for offsets in by_partition.values():
            assert offsets == list(range(len(offsets)))
    position = {(stream, value): (partition, offset) for stream, partition, offset, _, value in rows}
    for writer, values in writers_order.items():
        for stream in STREAMS:
            mine = [position[(stream, v)] for v in values if (stream, v) in position]
            for partition in range(PARTITIONS):
                offsets = [offset for p, offset in mine if p == partition]
                assert offsets == sorted(offsets), f"{writer}'s records out of order in {stream}/{partition}"


def test_concurrent_appends_are_all_committed_once_with_dense_offsets(log):
    threads, per_thread = 12, 40
    order: dict[str, list[str]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def writer(name: str) -> None:
        start.wait()
        mine = order.setdefault(name, [])
        try:
            for i in range(per_thread):
                value = f"{name}-{i}"
                log.append(DECISIONS if i % 3 else REWARDS, f"event-{name}-{i}", value)
                mine.append(value)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    workers = [threading.Thread(target=writer, args=(f"t{n}",)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not errors
    rows = stored(log)
    assert sorted(value for *_, value in rows) == sorted(v for values in order.values() for v in values)
    assert_dense_and_ordered(rows, order, log)


def _append_in_child(url: str, name: str, count: int, shared_log: EmbeddedLog | None) -> None:
    event_log = shared_log or open_embedded_log(make_engine(url), PARTITIONS, STREAMS)
    if shared_log is not None:
        event_log.engine.dispose(close=False)  # the parent's pooled connections are not the child's
    for i in range(count):
        event_log.append(DECISIONS, f"{name}-{i}", f"{name}-{i}")


def test_appends_from_several_processes_on_one_sqlite_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'decide.db'}"
    migrate(url)
    parent = open_embedded_log(make_engine(url), PARTITIONS, STREAMS)
    parent.append(DECISIONS, "parent-0", "parent-0")  # the parent has its own writer connection open
    context = multiprocessing.get_context("fork")
    children = [
        context.Process(target=_append_in_child, args=(url, f"p{n}", 60, parent if n % 2 else None)) for n in range(4)
    ]
    for child in children:
        child.start()
    parent.append(DECISIONS, "parent-1", "parent-1")
    for child in children:
        child.join(timeout=120)
        assert child.exitcode == 0
    rows = stored(parent)
    assert len(rows) == 4 * 60 + 2
    order = {f"p{n}": [f"p{n}-{i}" for i in range(60)] for n in range(4)} | {"parent": ["parent-0", "parent-1"]}
    assert_dense_and_ordered(rows, order, parent)
    parent.close()


def test_a_sqlite_url_with_options_appends_through_the_engine_with_the_same_offsets(tmp_path):
    url = f"sqlite:///{tmp_path / 'decide.db'}?timeout=30"  # no file of its own for the writer: the engine's connections
    migrate(url)
    event_log = open_embedded_log(make_engine(url), PARTITIONS, STREAMS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for number in range(3):
            event_log.append(DECISIONS, f"key-{number}", f"value-{number}")
    assert [(offset, value) for _, _, offset, _, value in sorted(stored(event_log), key=lambda row: row[2])] == [
        (1, "value-0"), (2, "value-1"), (3, "value-2")
    ]
    event_log.close()


def test_an_append_waits_for_another_writer_and_then_commits_promptly(tmp_path):
    url = f"sqlite:///{tmp_path / 'decide.db'}"
    migrate(url)
    event_log = open_embedded_log(make_engine(url), PARTITIONS, STREAMS)
    other = sqlite3.connect(tmp_path / "decide.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    released = []

    def release() -> None:
        time.sleep(0.3)
        released.append(time.monotonic())
        other.execute("COMMIT")

    releaser = threading.Thread(target=release)
    releaser.start()
    event_log.append(DECISIONS, "waited", "waited")
    done = time.monotonic()
    releaser.join()
    assert released and 0 <= done - released[0] < 0.1, "the append should follow the lock's release within milliseconds"
    assert [value for *_, value in stored(event_log)] == ["waited"]
    other.close()
    event_log.close()


def test_a_lock_held_past_the_timeout_is_a_log_unavailable_for_every_waiting_caller(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'decide.db'}"
    migrate(url)
    event_log = open_embedded_log(make_engine(url), PARTITIONS, STREAMS)
    monkeypatch.setattr(sqlite, "LOCK_TIMEOUT", 0.3)
    other = sqlite3.connect(tmp_path / "decide.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    outcomes: list[BaseException | None] = []

    def writer(i: int) -> None:
        try:
            event_log.append(DECISIONS, f"k{i}", f"v{i}")
            outcomes.append(None)
        except BaseException as error:  # noqa: BLE001 - checked below
            outcomes.append(error)

    workers = [threading.Thread(target=writer, args=(i,)) for i in range(5)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    other.execute("ROLLBACK")
    assert len(outcomes) == 5 and all(isinstance(outcome, LogUnavailable) for outcome in outcomes)
    assert stored(event_log) == []
    event_log.append(DECISIONS, "after", "after")  # the log works again once the lock is free
    assert [value for *_, value in stored(event_log)] == ["after"]
    other.close()
    event_log.close()


def test_a_database_that_refuses_the_write_fails_the_append(tmp_path):
    url = f"sqlite:///{tmp_path / 'decide.db'}"
    migrate(url)
    event_log = open_embedded_log(make_engine(url), PARTITIONS, STREAMS)
    with event_log.engine.begin() as connection:
        connection.execute(text("DROP TABLE event_log"))
    with pytest.raises(LogUnavailable, match="did not accept the record"):
        event_log.append(DECISIONS, "lost", "lost")
    event_log.close()


def test_one_bad_record_in_a_batch_fails_alone(log, monkeypatch):
    real_write = type(log)._write
    first = threading.Event()

    def write(self, batch):
        if not first.is_set():  # hold the first batch so that the others queue up behind it
            first.set()
            time.sleep(0.3)
        if any(pending.key == "bad" for pending in batch):
            if len(batch) == 1:
                raise ValueError("this record cannot be stored")
            raise ValueError("a batch with a bad record")
        real_write(self, batch)

    monkeypatch.setattr(type(log), "_write", write)
    outcomes: dict[str, BaseException | None] = {}

    def writer(key: str) -> None:
        try:
            log.append(DECISIONS, key, key)
            outcomes[key] = None
        except BaseException as error:  # noqa: BLE001 - checked below
            outcomes[key] = error

    leader = threading.Thread(target=writer, args=("leader",))
    leader.start()
    first.wait(5)
    followers = [threading.Thread(target=writer, args=(key,)) for key in ("a", "bad", "b", "c")]
    for follower in followers:
        follower.start()
    for thread in [leader, *followers]:
        thread.join()
    assert isinstance(outcomes.pop("bad"), ValueError)
    assert outcomes == {"leader": None, "a": None, "b": None, "c": None}
    assert sorted(value for *_, value in stored(log)) == ["a", "b", "c", "leader"]
