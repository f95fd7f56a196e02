"""Loop administration, written once for the API and the CLI: list, create, show, configure, versions, roll back, reset, delete.

Every operation runs in its own transaction (a reader's for looking, a
writer's for changing: on SQLite a writer holds the lock every append waits
for) and returns the JSON that both print. A write returns the policy version
it wrote.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from pydantic import StringConstraints, TypeAdapter, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from decide.config import ConfigError, LoopConfig
from decide.errors import Conflict, Invalid
from decide.store import queries
from decide.store.models import Loop, PolicyVersion

LoopName = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
_NAME = TypeAdapter(LoopName)

_FLOAT_SETTINGS = frozenset(name for name, value in LoopConfig().to_json().items() if isinstance(value, float))


class LoopExists(Conflict):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"a loop named '{name}' already exists",
            field="name",
            fix=f"change its settings with PATCH /loops/{name}/config or `decide loops configure {name}`",
        )


def settings_json(row: PolicyVersion) -> dict[str, Any]:
    """A version's settings; seconds and rates always as floats, so a `60` someone set reads like the default `600.0`."""
    return {name: float(value) if name in _FLOAT_SETTINGS and type(value) is int else value for name, value in json.loads(row.config).items()}


def version_info(row: PolicyVersion) -> dict[str, Any]:
    """One policy version as the API's ``PolicyVersionInfo`` and ``decide loops`` print it."""
    return {"version": row.version, "createdAt": row.created_at, "examplesLearned": row.examples_learned, "note": row.note,
            "config": settings_json(row)}


def loop_info(loop: Loop, row: PolicyVersion) -> dict[str, Any]:
    """A loop and its served version, as the API's ``LoopInfo``."""
    return {"name": loop.name, "currentVersion": row.version, "createdAt": loop.created_at, "examplesLearned": row.examples_learned,
            "config": settings_json(row)}


class Loops:
    """The loops in one database, through ``decide.store.db``'s ``sessions`` and ``writer_sessions`` of its engine."""

    def __init__(self, readers: sessionmaker[Session], writers: sessionmaker[Session]) -> None:
        self.readers = readers
        self.writers = writers

    def current_versions(self) -> dict[str, int]:
        """Every loop's served version, by name."""
        with self._transaction(self.readers) as session:
            return queries.current_versions(session)

    def list(self) -> list[dict[str, Any]]:
        with self._transaction(self.readers) as session:
            return [self._info(session, name) for name in queries.loop_names(session)]

    def create(self, name: str, config: dict[str, Any]) -> dict[str, Any]:
        """A new loop with its first version (nothing learned); a taken name is a ``LoopExists``."""
        try:
            _NAME.validate_python(name)
        except ValidationError as error:
            raise Invalid("use letters, digits, '_', '.' and '-', starting with a letter or digit (at most 128)", field="name") from error
        try:
            with self._transaction(self.writers) as session:
                if session.get(Loop, name) is not None:
                    raise LoopExists(name)
                return version_info(queries.create_loop(session, name, LoopConfig.from_json(config)))
        except IntegrityError as error:  # created by someone else since the check
            raise LoopExists(name) from error

    def show(self, name: str) -> dict[str, Any]:
        with self._transaction(self.readers) as session:
            return self._info(session, name)

    def current(self, name: str) -> dict[str, Any]:
        """The version the loop serves now."""
        with self._transaction(self.readers) as session:
            return version_info(queries.current(session, name))

    def configure(self, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        with self._transaction(self.writers) as session:
            return version_info(queries.configure(session, name, changes))

    def versions(self, name: str) -> list[dict[str, Any]]:
        """Every kept version, newest first."""
        with self._transaction(self.readers) as session:
            queries.current(session, name)
            return [version_info(row) for row in queries.versions(session, name)]

    def rollback(self, name: str, version: int) -> dict[str, Any]:
        with self._transaction(self.writers) as session:
            return version_info(queries.rollback(session, name, version))

    def reset(self, name: str) -> dict[str, Any]:
        with self._transaction(self.writers) as session:
            return version_info(queries.reset(session, name))

    def delete(self, name: str) -> None:
        """The loop and its policy versions; its archived examples stay."""
        with self._transaction(self.writers) as session:
            queries.current(session, name)
            queries.delete_loops(session, [name])

    @staticmethod
    def _info(session: Session, name: str) -> dict[str, Any]:
        return loop_info(session.get(Loop, name), queries.current(session, name))

    @contextmanager
    def _transaction(self, sessions: sessionmaker[Session]) -> Iterator[Session]:
        """One transaction; a setting at fault is named where the loop's JSON has it, ``config.<setting>``."""
        try:
            with sessions.begin() as session:
                yield session
        except ConfigError as error:
            raise Invalid(error.detail, field=f"config.{error.field}") from error
