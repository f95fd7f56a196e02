"""The API's policy cache: how often it looks for new versions, and that a look never stalls other threads."""

from __future__ import annotations

import threading

import pytest

from decide.api.policy_cache import PolicyCache
from decide.cli.database import prepare
from decide.config import Settings
from decide.store.db import make_engine, sessions


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def readers(tmp_path):
    settings = Settings.from_env(database_url=f"sqlite:///{tmp_path / 'decide.db'}")
    prepare(settings)
    engine = make_engine(settings.database_url)
    yield sessions(engine)
    engine.dispose()


def test_versions_are_read_at_most_once_per_poll_interval(readers) -> None:
    clock, reads = Clock(), []

    def read_versions() -> dict[str, int]:
        reads.append(clock.now)
        return {"default": 1}

    cache = PolicyCache(readers, poll_interval=0.2, clock=clock, read_versions=read_versions)
    for step in range(10):
        clock.now = step * 0.05
        assert cache.get("default").version == 1
    assert reads == [0.0, 0.2, 0.4]


def test_a_due_look_does_not_stall_the_other_threads(readers) -> None:
    clock = Clock()
    looking, release = threading.Event(), threading.Event()
    versions = {"default": 1}

    def read_versions() -> dict[str, int]:
        if clock.now > 0:  # the first look, at start-up, answers at once
            looking.set()
            assert release.wait(10)
        return dict(versions)

    cache = PolicyCache(readers, poll_interval=0.2, clock=clock, read_versions=read_versions)
    assert cache.get("default").version == 1
    clock.now = 1.0
    looker = threading.Thread(target=cache.get, args=("default",))
    looker.start()
    assert looking.wait(10)
    assert cache.get("default").version == 1  # answered while the look is still going on
    release.set()
    looker.join(10)
    assert not looker.is_alive()
