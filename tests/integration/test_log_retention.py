"""The embedded event log deletes what the pipeline has consumed once it is past DECIDE_LOG_RETENTION, and nothing else."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError

from decide.config import ConfigError, Settings
from decide.events.embedded import EmbeddedLog, open_embedded_log, partition_of
from decide.events.schemas import DECISIONS, REWARDS, STREAMS
from decide.pipeline.worker import Worker
from decide.store.db import make_engine, migrate, writer_sessions
from decide.store.models import Example, LogRecord
from tests.conftest import make_service

KEY = "event-1"


@pytest.fixture
def log(database_url: str):
    migrate(database_url)
    engine = make_engine(database_url)
    yield open_embedded_log(engine, 4, STREAMS)
    engine.dispose()


def offsets(log: EmbeddedLog) -> list[int]:
    with log.engine.connect() as connection:
        return list(connection.scalars(select(LogRecord.offset).where(LogRecord.stream == DECISIONS).order_by(LogRecord.offset)))


def append(log: EmbeddedLog, count: int, appended_at: float | None = None) -> list[int]:
    """Append ``count`` decisions under KEY, dated ``appended_at`` if given; returns their offsets."""
    before = set(offsets(log))
    for number in range(count):
        log.append(DECISIONS, KEY, f'{{"n": {number}}}')
    added = [offset for offset in offsets(log) if offset not in before]
    if appended_at is not None:
        with log.engine.begin() as connection:
            connection.execute(update(LogRecord).where(LogRecord.offset.in_(added)).values(appended_at=appended_at))
    return added


def test_only_consumed_records_past_retention_are_deleted_oldest_first(log):
    position = (DECISIONS, partition_of(KEY, log.partitions))
    old = append(log, 6, appended_at=100.0)
    young = append(log, 4)
    assert log.trim({position: old[4]}, appended_before=200.0, limit=1000) == 4  # not consumed: the last two old ones
    assert offsets(log) == old[4:] + young
    assert log.trim({position: young[-1] + 1}, appended_before=200.0, limit=1000) == 2  # the rest are too young
    assert offsets(log) == young
    assert log.trim({position: young[-1] + 1}, appended_before=200.0, limit=1000) == 0
    [later] = append(log, 1)
    assert later > young[-1]  # offsets go on where they were, never reused


def test_other_partitions_and_streams_are_left_alone(log):
    position = (DECISIONS, partition_of(KEY, log.partitions))
    other_key = next(f"other-{n}" for n in range(100) if partition_of(f"other-{n}", log.partitions) != position[1])
    consumed = append(log, 3)
    for stream, key in ((DECISIONS, other_key), (REWARDS, KEY)):
        for number in range(3):
            log.append(stream, key, f'{{"n": {number}}}')
    with log.engine.begin() as connection:
        connection.execute(update(LogRecord).values(appended_at=100.0))
    assert log.trim({position: consumed[-1] + 1}, appended_before=200.0, limit=1000) == 3
    with log.engine.connect() as connection:
        left = connection.execute(select(LogRecord.stream, LogRecord.partition, func.count()).group_by(LogRecord.stream, LogRecord.partition))
        assert sorted(left) == sorted([(DECISIONS, partition_of(other_key, log.partitions), 3), (REWARDS, position[1], 3)])


def test_a_limit_deletes_the_oldest_first(log):
    position = (DECISIONS, partition_of(KEY, log.partitions))
    appended = append(log, 5, appended_at=100.0)
    assert log.trim({position: appended[-1] + 1}, appended_before=200.0, limit=3) == 3
    assert offsets(log) == appended[3:]


@pytest.mark.parametrize("retention, kept", [(0.0, False), (-1.0, True), (7 * 86400.0, True)])
def test_the_worker_trims_what_it_learned_from_and_a_new_worker_reads_on(database_url, retention, kept):
    service = make_service(database_url, log_retention=retention)

    def rank_and_reward(count: int) -> None:
        for _ in range(count):
            response = service.client.post("/rank", json={"actions": [{"id": "a"}, {"id": "b"}]})
            assert response.status_code == 201
            assert service.client.post("/reward", json={"eventId": response.json["eventId"], "value": 1.0}).status_code == 202

    def log_size() -> int:
        with service.engine.connect() as connection:
            return connection.scalar(select(func.count()).select_from(LogRecord))

    def examples() -> int:
        with service.engine.connect() as connection:
            return connection.scalar(select(func.count()).select_from(Example))

    rank_and_reward(6)
    service.advance(700)  # past the default loop's 600 s reward wait
    service.learn_all()
    assert examples() == 6
    assert log_size() == (12 if kept else 0)

    restarted = Worker(writer_sessions(service.engine), service.app.extensions["decide"].event_log,
                       Settings(database_url=database_url, join_grace=0.0, log_retention=retention), clock=service.clock)
    rank_and_reward(3)
    service.advance(700)
    for _ in range(20):
        restarted.cycle(timeout=0.0)
    assert examples() == 9
    assert log_size() == (18 if kept else 0)
    restarted.close()
    service.worker.close()
    service.engine.dispose()


def test_a_decision_whose_join_is_open_is_kept_for_a_restarted_worker(database_url):
    service = make_service(database_url, log_retention=0.0)
    event_id = service.client.post("/rank", json={"actions": [{"id": "a"}, {"id": "b"}]}).json["eventId"]
    service.advance(1)
    for _ in range(3):
        service.worker.cycle(timeout=0.0)
    with service.engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(LogRecord)) == 1  # the open join's decision
    assert service.client.post("/reward", json={"eventId": event_id, "value": 1.0}).status_code == 202
    restarted = Worker(writer_sessions(service.engine), service.app.extensions["decide"].event_log,
                       Settings(database_url=database_url, join_grace=0.0, log_retention=0.0), clock=service.clock)
    service.advance(700)
    for _ in range(10):
        restarted.cycle(timeout=0.0)
    with service.engine.connect() as connection:
        assert list(connection.execute(select(Example.event_id, Example.reason))) == [(event_id, "observed")]
        assert connection.scalar(select(func.count()).select_from(LogRecord)) == 0
    restarted.close()
    service.worker.close()
    service.engine.dispose()


def test_a_failed_trim_leaves_the_cycle_and_is_tried_again_later(database_url, monkeypatch, caplog):
    service = make_service(database_url, log_retention=0.0)
    service.client.post("/rank", json={"actions": [{"id": "a"}]})
    service.advance(700)
    calls = []

    def fail(*args):
        calls.append(args)
        raise OperationalError("DELETE", {}, Exception("database is locked"))

    monkeypatch.setattr(service.worker.event_log, "trim", fail)
    service.learn_all()
    assert len(calls) == 1 and "trimming the event log failed" in caplog.text
    monkeypatch.undo()

    def log_size() -> int:
        with service.engine.connect() as connection:
            return connection.scalar(select(func.count()).select_from(LogRecord))

    service.learn_all()
    assert log_size() == 1  # not tried again before TRIM_PAUSE has passed
    service.advance(11)
    service.learn_all()
    assert log_size() == 0
    with service.engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(Example)) == 1
    service.worker.close()
    service.engine.dispose()


def test_retention_is_checked():
    with pytest.raises(ConfigError, match="DECIDE_LOG_RETENTION"):
        Settings(log_retention=-2.0)
    assert Settings.from_env({"DECIDE_LOG_RETENTION": "-1"}).log_retention == -1
