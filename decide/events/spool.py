"""A durable local spool: where an API process puts events while the event log cannot take them.

The spool is a SQLite file in WAL mode with ``synchronous=FULL``: an append
returns only after its commit is fsync'd, so an event acknowledged from the
spool survives a crash of the process or the machine's power. Every decide
process on a host may share one spool file (SQLite serializes the writers);
a ``flock`` on a side file lets only one of them drain it at a time, so the
drainer forwards records in the order they were spooled. A record is removed
only after the log has acknowledged it, so a crash mid-drain forwards it again:
delivery is at least once, and the pipeline's record ids make that harmless.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from decide.events.log import LogUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpooledRecord:
    sequence: int
    stream: str
    key: str
    value: str


class Spool:
    """A FIFO of records waiting for the event log, safe across threads and processes."""

    def __init__(self, path: str) -> None:
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS spool (sequence INTEGER PRIMARY KEY AUTOINCREMENT, stream TEXT NOT NULL, "
            "key TEXT NOT NULL, value TEXT NOT NULL)"
        )
        self._drain_file = open(f"{path}.drain", "a+")

    def append(self, stream: str, key: str, value: str) -> None:
        """Return only once the record is on disk (fsync'd by SQLite's commit)."""
        with self._lock:
            self._db.execute("INSERT INTO spool (stream, key, value) VALUES (?, ?, ?)", (stream, key, value))

    def peek(self, limit: int) -> list[SpooledRecord]:
        """The oldest records, in the order they were spooled."""
        with self._lock:
            rows = self._db.execute("SELECT sequence, stream, key, value FROM spool ORDER BY sequence LIMIT ?", (limit,)).fetchall()
        return [SpooledRecord(*row) for row in rows]

    def remove(self, through: int) -> None:
        """Forget every record up to sequence ``through``: the log has them now."""
        with self._lock:
            self._db.execute("DELETE FROM spool WHERE sequence <= ?", (through,))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM spool").fetchone()[0]

    @contextmanager
    def draining(self) -> Iterator[bool]:
        """Whether this process may drain now; another process holding the lock means no."""
        try:
            fcntl.flock(self._drain_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(self._drain_file, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._lock:
            self._db.close()
        self._drain_file.close()


class Drainer:
    """A background thread that forwards spooled records, oldest first, until the spool is empty.

    ``forward`` must return only once the log has acknowledged every record it
    was given, and raise ``LogUnavailable`` otherwise; the drainer then waits
    ``retry`` seconds and tries again from the same record. ``on_empty`` runs (under no lock) each
    time the drainer finds the spool empty, so its owner can stop spooling.
    """

    def __init__(
        self,
        spool: Spool,
        forward: Callable[[list[SpooledRecord]], None],
        on_empty: Callable[[], None],
        batch: int = 500,
        retry: float = 0.5,
    ) -> None:
        self.spool = spool
        self.forward = forward
        self.on_empty = on_empty
        self.batch = batch
        self.retry = retry
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="decide-spool-drainer", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                drained = self._drain_once()
            except LogUnavailable as error:
                if not failing:
                    log.warning("the event log does not take spooled events yet (%s); retrying every %.1fs", error, self.retry)
                failing, drained = True, False
            except Exception:
                log.exception("forwarding spooled events failed; retrying in %.1fs", self.retry)
                drained = False
            else:
                failing = failing and not drained
            if not drained:
                self._wake.wait(self.retry)
                self._wake.clear()

    def _drain_once(self) -> bool:
        """Forward one batch; False when there is nothing to do now (or another process is draining)."""
        with self.spool.draining() as mine:
            if not mine:
                return False
            records = self.spool.peek(self.batch)
            if not records:
                self.on_empty()
                return False
            self.forward(records)
            self.spool.remove(records[-1].sequence)
            log.info("forwarded %d spooled events to the event log", len(records))
            return True
