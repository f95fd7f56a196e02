"""``decide loops``: the loop service (``decide.loops``) on the command line."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from decide.cli.command import Group
from decide.cli.database import existing
from decide.cli.options import database_option, echo_json, parse_settings, settings_option

if TYPE_CHECKING:
    from decide.loops import Loops


@click.group(cls=Group)
def loops() -> None:
    """Manage decision loops directly in the database."""


def _loops(database_url: str) -> Loops:
    """The loops in the existing database at ``database_url`` (imported here: the store is heavy for ``decide --help``)."""
    from decide.loops import Loops
    from decide.store.db import sessions, writer_sessions

    engine = existing(database_url)
    return Loops(sessions(engine), writer_sessions(engine))


@loops.command("list")
@database_option
def list_loops(database_url: str) -> None:
    echo_json(_loops(database_url).current_versions())


@loops.command()
@click.argument("name")
@settings_option
@database_option
def create(name: str, settings: tuple[str, ...], database_url: str) -> None:
    """Create loop NAME."""
    echo_json(_loops(database_url).create(name, parse_settings(settings)))


@loops.command()
@click.argument("name")
@database_option
def show(name: str, database_url: str) -> None:
    echo_json(_loops(database_url).current(name))


@loops.command()
@click.argument("name")
@click.option("--set", "settings", multiple=True, required=True, metavar="KEY=VALUE", help="A setting, value in JSON (repeatable).")
@database_option
def configure(name: str, settings: tuple[str, ...], database_url: str) -> None:
    """Change settings of NAME, e.g. --set rewardWaitTime=60 --set policy='"linucb"'."""
    echo_json(_loops(database_url).configure(name, parse_settings(settings)))


@loops.command()
@click.argument("name")
@database_option
def versions(name: str, database_url: str) -> None:
    echo_json([{key: value for key, value in version.items() if key != "config"} for version in _loops(database_url).versions(name)])


@loops.command()
@click.argument("name")
@click.argument("version", type=int)
@database_option
def rollback(name: str, version: int, database_url: str) -> None:
    """Serve VERSION of NAME again (as a new version)."""
    echo_json(_loops(database_url).rollback(name, version))


@loops.command()
@click.argument("name")
@database_option
def reset(name: str, database_url: str) -> None:
    """Forget what NAME has learned (a new, empty version)."""
    echo_json(_loops(database_url).reset(name))


@loops.command()
@click.argument("name")
@click.confirmation_option(prompt="Delete the loop and all its policy versions?")
@database_option
def delete(name: str, database_url: str) -> None:
    """Delete loop NAME and its policy versions (archived examples stay)."""
    _loops(database_url).delete(name)
    click.echo(f"deleted loop '{name}'")
