"""Shared fixtures: a migrated database on SQLite and on a real PostgreSQL, an app, a worker.

PostgreSQL comes from ``DECIDE_TEST_POSTGRES_URL`` (``scripts/test.sh`` starts a
server and sets it). Without it the PostgreSQL half of the suite is skipped,
unless ``DECIDE_REQUIRE_POSTGRES=1`` (as in CI), where its absence fails.

Under pytest-xdist each worker gets a database of its own on that server
(``decide_gw0``, ...), since every test empties the schema it uses; the tests
that use the Kafka broker all run on one worker (``--dist loadgroup``), since
some of them stop and start it.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, make_url, text

from decide.api import create_app
from decide.config import Settings
from decide.pipeline.worker import Worker
from decide.store import queries
from decide.store.db import make_engine, migrate, writer_sessions

POSTGRES_URL = os.environ.get("DECIDE_TEST_POSTGRES_URL")


@pytest.hookimpl(tryfirst=True)  # before -m selects: `-m kafka` / `-m "not kafka"` then see every Kafka test
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "kafka_bootstrap" in getattr(item, "fixturenames", ()) or item.get_closest_marker("kafka"):
            item.add_marker(pytest.mark.kafka)
            item.add_marker(pytest.mark.xdist_group("kafka"))


def _postgres_or_skip() -> str:
    if POSTGRES_URL:
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        return _worker_database(POSTGRES_URL, worker) if worker else POSTGRES_URL
    if os.environ.get("DECIDE_REQUIRE_POSTGRES") == "1":
        pytest.fail("DECIDE_REQUIRE_POSTGRES=1 but DECIDE_TEST_POSTGRES_URL is not set; run scripts/postgres.sh start")
    pytest.skip("no PostgreSQL: set DECIDE_TEST_POSTGRES_URL (scripts/test.sh does)")


@functools.cache
def _worker_database(server_url: str, worker: str) -> str:
    """The database of one xdist worker on the server at ``server_url``, created the first time it is asked for."""
    url = make_url(server_url)
    name = f"{url.database}_{worker}"
    engine = make_engine(server_url).execution_options(isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        if connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}) is None:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def fresh_postgres(url: str) -> None:
    """Empty the test database so every test starts from an unmigrated schema."""
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'decide.db'}"
    url = _postgres_or_skip()
    fresh_postgres(url)
    return url


@dataclass
class Service:
    """An app and a worker over one database, with a settable clock for the worker."""

    settings: Settings
    engine: Engine
    app: Flask
    client: FlaskClient
    worker: Worker
    clock: "Clock"

    def create_loop(self, name: str, **config) -> None:
        response = self.client.post("/loops", json={"name": name, "config": config})
        assert response.status_code == 201, response.json

    def advance(self, seconds: float) -> None:
        """Move the worker's clock forward: joins close and updates fall due without sleeping."""
        self.clock.offset += seconds

    def learn_all(self, cycles: int = 50) -> None:
        """Cycle the worker until the log is drained and nothing is left to close."""
        for _ in range(cycles):
            result = self.worker.cycle(timeout=0.0)
            if result.records == 0 and result.closed == 0 and not result.versions:
                return


@dataclass
class Clock:
    offset: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def make_service(database_url: str, **overrides) -> Service:
    settings = Settings(**{"database_url": database_url, "join_grace": 0.0, "poll_interval": 0.0, **overrides})
    migrate(database_url)
    engine = make_engine(database_url)
    with writer_sessions(engine).begin() as session:
        queries.ensure_loop(session, settings.default_loop)
    app = create_app(settings, engine=engine)
    clock = Clock()
    worker = Worker(writer_sessions(engine), app.extensions["decide"].event_log, settings, clock=clock)
    return Service(settings, engine, app, app.test_client(), worker, clock)


@pytest.fixture
def service(database_url: str) -> Iterator[Service]:
    built = make_service(database_url)
    yield built
    built.worker.close()
    built.engine.dispose()
