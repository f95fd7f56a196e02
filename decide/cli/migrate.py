"""``decide migrate``: create or upgrade the database."""

from __future__ import annotations

import click

from decide.cli.command import Command
from decide.cli.database import prepare, redacted
from decide.cli.options import database_option
from decide.config import Settings


@click.command(cls=Command)
@database_option
def migrate(database_url: str) -> None:
    """Create or upgrade the database schema in place, and make sure the default loop exists."""
    prepare(Settings.from_env(database_url=database_url))
    click.echo(f"database at {redacted(database_url)} is up to date")
