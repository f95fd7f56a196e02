"""The database and event log a command works on; the database is created only by ``migrate`` and ``serve``.

SQLAlchemy is imported when a command runs, not when ``decide`` starts: it
costs more than the rest of ``decide --help``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from decide.config import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from decide.events.log import EventLog


def existing(database_url: str) -> Engine:
    """An engine on decide's existing, migrated database (``decide.store.db.existing_engine``)."""
    from decide.store.db import existing_engine

    return existing_engine(database_url)


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
    """The configured event log (its errors, e.g. Kafka's topics disagreeing with the settings, are the CLI's messages)."""
    from decide.events.factory import open_log

    return open_log(settings, engine)


def redacted(url: str) -> str:
    """``url`` without its password, to print."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
