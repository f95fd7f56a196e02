"""SQLite's fast paths, in one place: its engine set-up, its own connections, its write lock, its raw reads.

Through SQLAlchemy, a small statement on SQLite costs ten times its own work
(the pool checkout, BEGIN and ROLLBACK), and SQLite's busy handler sleeps 1, 2,
5, 10 ... 100 ms between attempts at the write lock, so a writer waiting behind
the learner's longer transactions would sleep well past the moment the lock came
free. So the statements made on every request (the API's look-ups, the embedded
log's appends) run as plain SQL on a connection this process or thread opened
itself, and a writer polls the lock every fraction of a millisecond.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from functools import partial
from types import SimpleNamespace

from sqlalchemy import Connection, Engine, create_engine, event

from decide.store.models import Example, Loop

LOCK_TIMEOUT = 30.0
"""Seconds a writer waits for the write lock before giving up (the engine's busy timeout)."""
READ_TIMEOUT = 30.0
"""Seconds a read waits on a locked database."""

_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON")
"""WAL, so readers never wait for the one writer; NORMAL sync, which WAL keeps consistent."""


def make_engine(url: str) -> Engine:
    """An engine on a SQLite ``url`` whose writer transactions take the write lock at BEGIN."""
    engine = create_engine(url, connect_args={"timeout": LOCK_TIMEOUT, "isolation_level": None})
    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "begin", _on_begin)
    return engine


def _on_connect(connection: sqlite3.Connection, _record: object) -> None:
    set_pragmas(connection)


def _on_begin(connection: Connection) -> None:
    """Writers take SQLite's write lock at BEGIN, so read-then-write never fails on lock upgrade."""
    immediate = connection.get_execution_options().get("writer", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def set_pragmas(connection: sqlite3.Connection) -> None:
    for pragma in _PRAGMAS:
        connection.execute(pragma)


def sqlite_file(engine: Engine) -> str | None:
    """The database file of a SQLite engine (None for other databases, in-memory SQLite and URLs with options)."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:" or url.query:
        return None
    return url.database


_UNOPENED: tuple[int, sqlite3.Connection | None] = (0, None)


class OwnConnection:
    """A connection opened by this process (``per_thread``: by this thread), never one inherited across a fork.

    A connection inherited from the parent shares its file locks and its state:
    using or closing it in the child would corrupt the parent's. The child keeps it
    referenced, so that its destructor never runs, and opens its own.
    """

    def __init__(self, open_connection: Callable[[], sqlite3.Connection], *, per_thread: bool) -> None:
        self._open = open_connection
        self._slot = threading.local() if per_thread else SimpleNamespace()
        self._inherited: list[sqlite3.Connection] = []

    def get(self) -> sqlite3.Connection:
        pid, connection = getattr(self._slot, "opened", _UNOPENED)
        if connection is None or pid != os.getpid():
            if connection is not None:
                self._inherited.append(connection)
            connection = self._open()
            self._slot.opened = (os.getpid(), connection)
        return connection

    def discard(self) -> None:
        """Close the connection if this process opened it; the next ``get`` opens another."""
        pid, connection = getattr(self._slot, "opened", _UNOPENED)
        if connection is not None and pid != os.getpid():
            self._inherited.append(connection)
        elif connection is not None:
            try:
                connection.close()
            except sqlite3.Error:
                pass
        self._slot.opened = _UNOPENED


def begin_immediate(connection: sqlite3.Connection) -> None:
    """Take the write lock, polling every 0.1–1 ms while another connection holds it, for up to ``LOCK_TIMEOUT``."""
    deadline = time.monotonic() + LOCK_TIMEOUT
    pause = 0.0001
    while True:
        try:
            connection.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as error:
            code = getattr(error, "sqlite_errorcode", sqlite3.SQLITE_BUSY) & 0xFF  # primary result code
            busy = code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
            if not busy or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.001)


def _open_writer(path: str) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=LOCK_TIMEOUT, isolation_level=None, check_same_thread=False)
    set_pragmas(connection)
    connection.execute("PRAGMA busy_timeout=0")  # begin_immediate waits instead
    return connection


class FileWriter:
    """This process's writing connection to a SQLite file; its callers take turns (one writes at a time)."""

    def __init__(self, path: str) -> None:
        self._connection = OwnConnection(partial(_open_writer, path), per_thread=False)

    def write(self, sql: str, rows: list[tuple]) -> None:
        """Run ``sql`` once per row, in one transaction; a failure rolls it all back and is raised."""
        connection = self._connection.get()
        begin_immediate(connection)
        try:
            if len(rows) == 1:  # the usual batch under load: executemany's own set-up costs more than the insert
                connection.execute(sql, rows[0])
            else:
                connection.executemany(sql, rows)
            connection.execute("COMMIT")
        except BaseException:
            try:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
            except sqlite3.Error:
                self._connection.discard()  # a connection that cannot roll back is not used again
            raise

    def close(self) -> None:
        self._connection.discard()


_CLOSED = f"SELECT 1 FROM {Example.__tablename__} WHERE event_id = ?"
_VERSIONS = f"SELECT name, current_version FROM {Loop.__tablename__}"


class FileReads:
    """The API's per-request look-ups (``store.reads.HotReads``) as plain SQL on each thread's own connection.

    The connections are in autocommit mode, so every look-up sees the latest commit.
    """

    def __init__(self, path: str) -> None:
        self._connections = OwnConnection(
            partial(sqlite3.connect, path, timeout=READ_TIMEOUT, isolation_level=None), per_thread=True
        )

    def closed(self, event_id: str) -> bool:
        return self._connections.get().execute(_CLOSED, (event_id,)).fetchone() is not None

    def versions(self) -> dict[str, int]:
        return dict(self._connections.get().execute(_VERSIONS).fetchall())
