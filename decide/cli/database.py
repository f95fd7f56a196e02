"""The database and event log a command works on; the database is created only by ``migrate`` and ``serve``.

SQLAlchemy is imported when a command runs, not when ``decide`` starts: it
costs more than the rest of ``decide --help``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from decide.config import Settings
from decide.errors import NotFound, Unavailable

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from decide.events.log import EventLog

POINT_ELSEWHERE = "point --database-url or DECIDE_DATABASE_URL at decide's database"


def existing(database_url: str) -> Engine:
    """An engine on decide's database, migrated; else an error that says where it looked.

    Opening a SQLite file that is not there would create an empty one, and the
    command would then fail on a missing table; so the file is looked for first.
    """
    from sqlalchemy.exc import OperationalError

    from decide.store.db import is_current, make_engine
    from decide.store.sqlite import sqlite_file

    engine = make_engine(database_url)
    path = sqlite_file(engine)
    where = str(Path(path).resolve()) if path else redacted(database_url)
    if path and not Path(path).is_file():
        raise NotFound(f"there is no decide database at {where}", fix=f"{POINT_ELSEWHERE}, or run `decide migrate` to create one there")
    try:
        current = is_current(engine)
    except OperationalError as error:
        reason = str(error.orig).strip().splitlines()[0] if str(error.orig).strip() else type(error.orig).__name__
        raise Unavailable(f"cannot open the database at {where} ({reason})", fix=POINT_ELSEWHERE) from error
    if not current:
        raise Unavailable(
            f"the database at {where} has no decide tables, or older ones",
            fix=f"run `decide migrate` on it to create or upgrade them, or {POINT_ELSEWHERE}",
        )
    return engine


def writers(database_url: str) -> sessionmaker[Session]:
    """Writer sessions on the existing database at ``database_url``."""
    from decide.store.db import writer_sessions

    return writer_sessions(existing(database_url))


def prepare(settings: Settings) -> None:
    """Create or upgrade the schema in place, and make sure the default loop exists."""
    from decide.store import queries
    from decide.store.db import make_engine, migrate, writer_sessions

    migrate(settings.database_url)
    with writer_sessions(make_engine(settings.database_url)).begin() as session:
        queries.ensure_loop(session, settings.default_loop)


def event_log(settings: Settings, engine: Engine) -> EventLog:
    """The configured event log, or a message a person can act on (e.g. Kafka's topics disagree with the settings)."""
    from decide.events.factory import open_log

    try:
        return open_log(settings, engine)
    except ValueError as error:
        raise click.ClickException(str(error)) from error


def redacted(url: str) -> str:
    """``url`` without its password, to print."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
