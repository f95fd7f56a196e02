"""The API's two look-ups made on every request or poll, done the fastest way the database allows."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import Engine, bindparam, select

from decide.store.models import Example, Loop
from decide.store.sqlite import FileReads, sqlite_file

_CLOSED = select(Example.event_id).where(Example.event_id == bindparam("event_id"))
_VERSIONS = select(Loop.name, Loop.current_version)


class HotReads(Protocol):
    def closed(self, event_id: str) -> bool:
        """Whether the event's join has closed: a primary-key lookup in the archive of closed joins."""

    def versions(self) -> dict[str, int]:
        """Every loop's served version, which the policy cache looks at every ``poll_interval``."""


class EngineReads:
    """The look-ups through the engine's pool, on any database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def closed(self, event_id: str) -> bool:
        with self.engine.connect() as connection:
            return connection.execute(_CLOSED, {"event_id": event_id}).first() is not None

    def versions(self) -> dict[str, int]:
        with self.engine.connect() as connection:
            return {name: version for name, version in connection.execute(_VERSIONS)}


def hot_reads(engine: Engine) -> HotReads:
    """Plain SQL on each thread's own connection for a SQLite file (a tenth of the engine's cost), the engine otherwise."""
    path = sqlite_file(engine)
    return FileReads(path) if path is not None else EngineReads(engine)
