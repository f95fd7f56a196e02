"""Engine and schema management, and the one place that asks which database an engine is on."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, inspect, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from decide.errors import NotFound, Unavailable
from decide.extras import require
from decide.store import sqlite

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL so readers never wait for the one writer."""
    if url.startswith("sqlite"):
        return sqlite.make_engine(url)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if make_url(url).get_backend_name() == "postgresql":
        require("psycopg", "postgres")
    return create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=8)


POINT_ELSEWHERE = "point --database-url or DECIDE_DATABASE_URL at decide's database"


def existing_engine(url: str) -> Engine:
    """An engine on decide's database at ``url``, migrated; else an error that says where it looked.

    Opening a SQLite file that is not there would create an empty one, and the
    command would then fail on a missing table; so the file is looked for first.
    """
    engine = make_engine(url)
    path = sqlite.sqlite_file(engine)
    where = str(Path(path).resolve()) if path else make_url(url).render_as_string(hide_password=True)
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


def is_sqlite(bind: Engine | Connection | Session) -> bool:
    return _dialect(bind) == "sqlite"


def is_postgres(bind: Engine | Connection | Session) -> bool:
    return _dialect(bind) == "postgresql"


def _dialect(bind: Engine | Connection | Session) -> str:
    """The one place that asks which database ``bind`` is on."""
    return (bind.get_bind() if isinstance(bind, Session) else bind).dialect.name


def sessions(engine: Engine) -> sessionmaker[Session]:
    """Sessions for reading, and for transactions that only write (appends)."""
    return sessionmaker(engine, expire_on_commit=False)


def writer_sessions(engine: Engine) -> sessionmaker[Session]:
    """Sessions for transactions that read and then write what they read (the pipeline, admin)."""
    return sessionmaker(engine.execution_options(writer=True), expire_on_commit=False)


def readers_outside_lock(writers: sessionmaker[Session]) -> sessionmaker[Session] | None:
    """Sessions on the writers' engine for reading before a writer's transaction, or None where reads belong inside it.

    SQLite has one write lock, which every writer takes at BEGIN: these sessions'
    transactions begin plain (``BEGIN``, not ``BEGIN IMMEDIATE``), so reading takes
    no write lock. On other databases, writers run side by side and the reads lock
    what they read, so they stay in the writer's transaction (None).
    """
    with writers() as session:
        bind = session.get_bind()
    if not is_sqlite(bind):
        return None
    return sessionmaker(bind.execution_options(writer=False), expire_on_commit=False)


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str, revision: str = "head") -> None:
    """Upgrade the database at ``url`` in place to ``revision``."""
    command.upgrade(alembic_config(url), revision)


def is_current(engine: Engine) -> bool:
    """Whether the schema exists and is at the newest migration (for ``/readyz``)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    if not inspect(engine).has_table("alembic_version"):
        return False
    head = ScriptDirectory.from_config(alembic_config(str(engine.url))).get_current_head()
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision() == head
