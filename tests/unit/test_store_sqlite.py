"""SQLite's fast paths: connections of the process's (or thread's) own across forks, and the API's look-ups."""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
from functools import partial

import pytest
from sqlalchemy import insert

from decide.errors import Unavailable
from decide.store.db import make_engine
from decide.store.models import Base, Example, Loop
from decide.store.reads import EngineReads, hot_reads
from decide.store.sqlite import FileReads, OwnConnection


class Recorded(sqlite3.Connection):
    """A connection that remembers whether this process closed it."""

    closed_here = False

    def close(self) -> None:
        self.closed_here = True
        super().close()


def test_a_connection_opened_before_a_fork_is_neither_used_nor_closed_in_the_child(tmp_path) -> None:
    holder = OwnConnection(partial(sqlite3.connect, str(tmp_path / "file.db"), isolation_level=None, factory=Recorded), per_thread=False)
    parents = holder.get()
    parents.execute("CREATE TABLE t (x)")
    pid = os.fork()
    if pid == 0:  # the child reports by its exit status: 0 when every check held
        status = 1
        try:
            childs = holder.get()
            holder.discard()
            again = holder.get()
            if childs is not parents and childs.closed_here and again not in (parents, childs) and not parents.closed_here:
                again.execute("INSERT INTO t VALUES (1)")
                status = 0
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert holder.get() is parents
    assert parents.execute("SELECT x FROM t").fetchall() == [(1,)]  # still open here, and sees the child's write


def test_each_thread_keeps_a_connection_of_its_own(tmp_path) -> None:
    holder = OwnConnection(partial(sqlite3.connect, str(tmp_path / "file.db")), per_thread=True)
    mine = holder.get()
    theirs = []
    thread = threading.Thread(target=lambda: theirs.extend([holder.get(), holder.get()]))
    thread.start()
    thread.join()
    assert holder.get() is mine
    assert theirs[0] is theirs[1] and theirs[0] is not mine


def test_the_look_ups_on_a_sqlite_file_answer_as_the_engine_does(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'decide.db'}"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(insert(Loop), [{"name": "a", "created_at": 0.0, "current_version": 3}, {"name": "b", "created_at": 0.0, "current_version": 1}])
        connection.execute(insert(Example), [{"event_id": "done", "closed_at": 1.0, "reward_count": 0, "reason": "default", "learned": True}])
    through_engine = make_engine(url + "?timeout=30")  # options in the URL: no file of its own to open
    file_reads, engine_reads = hot_reads(engine), hot_reads(through_engine)
    assert isinstance(file_reads, FileReads) and isinstance(engine_reads, EngineReads)
    for reads in (file_reads, engine_reads):
        assert reads.versions() == {"a": 3, "b": 1}
        assert reads.closed("done") and not reads.closed("open")
    engine.dispose()
    through_engine.dispose()


def test_a_postgresql_url_without_its_driver_names_the_extra_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # what an install without the extra finds
    with pytest.raises(Unavailable, match=r"pip install 'decide\[postgres\]'"):
        make_engine("postgresql://decide@localhost/decide")
