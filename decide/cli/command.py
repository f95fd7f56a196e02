"""The classes every ``decide`` command is built on: they turn decide's errors into one-line messages, once.

An ``Invalid`` input that names its field is a bad parameter (exit status 2,
with the command's usage); any other ``DecideError`` is a plain message (exit
status 1). Either way, no traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from decide.config import SettingsError
from decide.errors import DecideError, Invalid


def message(error: DecideError, ctx: click.Context) -> click.ClickException:
    """What the command line says about ``error``: a bad parameter when a person's input is at fault, else the error."""
    if isinstance(error, Invalid) and error.field and not isinstance(error, SettingsError):
        return click.BadParameter(str(error), ctx=ctx, param_hint=error.field)
    return click.ClickException(str(error))


@contextmanager
def messages(ctx: click.Context) -> Iterator[None]:
    """Raise decide's errors, and pydantic's validation errors (model settings), as click's messages about ``ctx``'s command."""
    try:
        yield
    except DecideError as error:
        raise message(error, ctx) from error
    except Exception as error:
        from pydantic import ValidationError

        if not isinstance(error, ValidationError):
            raise
        first = error.errors(include_url=False)[0]
        raise click.BadParameter(
            first["msg"].removeprefix("Value error, "), ctx=ctx, param_hint=".".join(map(str, first["loc"])) or "--set"
        ) from error


class Command(click.Command):
    """A command whose errors are messages, shown with its own usage."""

    def invoke(self, ctx: click.Context) -> Any:
        with messages(ctx):
            return super().invoke(ctx)


class Group(click.Group):
    """A group of ``Command``s; it also catches errors raised while its subcommand's options are read."""

    command_class = Command
    group_class = type

    def invoke(self, ctx: click.Context) -> Any:
        with messages(ctx):
            return super().invoke(ctx)
