"""Every implementation of the event-log interface, built the way the service builds it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from decide.config import Settings
from decide.events.factory import open_log
from decide.events.log import EventLog
from decide.store.db import make_engine, migrate
from tests.conftest import _postgres_or_skip, fresh_postgres
from tests.kafka.broker import kafka_bootstrap, topic_prefix  # noqa: F401 (fixtures)

PARTITIONS = 4


@pytest.fixture(params=["embedded-sqlite", pytest.param("embedded-postgres", marks=pytest.mark.postgres), pytest.param("kafka", marks=pytest.mark.kafka)])
def settings(request: pytest.FixtureRequest, tmp_path) -> Settings:
    if request.param == "kafka":
        return Settings(
            event_log="kafka",
            partitions=PARTITIONS,
            kafka_bootstrap=request.getfixturevalue("kafka_bootstrap"),
            topic_prefix=request.getfixturevalue("topic_prefix"),
            spool_path=str(tmp_path / "spool.db"),
        )
    if request.param == "embedded-postgres":
        url = _postgres_or_skip()
        fresh_postgres(url)
    else:
        url = f"sqlite:///{tmp_path / 'decide.db'}"
    migrate(url)
    return Settings(database_url=url, partitions=PARTITIONS)


@pytest.fixture
def event_log(settings: Settings) -> Iterator[EventLog]:
    engine = make_engine(settings.database_url)
    opened = open_log(settings, engine)
    yield opened
    opened.close()
    engine.dispose()


@pytest.fixture
def position_stream(settings: Settings) -> Callable[[str], str]:
    """The stream name positions and records carry: Kafka names them by topic, so offsets never mix."""
    if settings.event_log == "kafka":
        return lambda stream: f"{settings.topic_prefix}{stream}"
    return lambda stream: stream
