"""Set-at-a-time statements for the pipeline, where per-row ORM work would cost more than the learning.

On PostgreSQL, id lists travel as one array parameter (``= ANY``) rather than
thousands of placeholders, and inserts use COPY on the session's own connection,
inside its transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, String, Table, any_, bindparam, insert
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from decide.store.db import is_postgres

SQLITE_CHUNK = 10_000
"""Ids per statement on SQLite, well below its limit of 32,766 host parameters."""


def id_chunks(session: Session, ids: Collection[str]) -> Iterator[list[str]]:
    """The ids in as few groups as the database takes in one statement."""
    values = sorted(ids)
    step = len(values) if is_postgres(session) else SQLITE_CHUNK
    for start in range(0, len(values), max(1, step)):
        yield values[start : start + step]


def among(session: Session, column: ColumnElement[str], ids: list[str]) -> ColumnElement[bool]:
    if is_postgres(session):
        return column == any_(bindparam(None, ids, type_=ARRAY(String)))
    return column.in_(ids)


def insert_rows(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (all with the same keys) in the session's transaction.

    A duplicate key raises SQLAlchemy's ``IntegrityError`` on either database, as an ORM insert would.
    """
    if not rows:
        return
    if not is_postgres(session):
        session.execute(insert(table), list(rows))
        return
    import psycopg  # only on PostgreSQL: the base install does without it

    columns = list(rows[0])
    quote = session.get_bind().dialect.identifier_preparer.quote
    statement = f"COPY {quote(table.name)} ({', '.join(quote(column) for column in columns)}) FROM STDIN"
    connection = session.connection().connection.driver_connection
    try:
        with connection.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row([row[column] for column in columns])
    except psycopg.IntegrityError as error:
        raise IntegrityError(statement, None, error) from error
