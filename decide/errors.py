"""One error tree for everything a person can fix: what went wrong, which field, and how to fix it.

Every module raises one of the four kinds below (or a subclass named for what
it is about); ``api/problems.py`` maps a kind to an HTTP status once, and the
CLI maps it to a message once. Nothing else translates errors.
"""

from __future__ import annotations


class DecideError(Exception):
    """A problem a person can act on; ``field`` names the input at fault, ``fix`` what to do about it."""

    def __init__(self, detail: str, *, field: str | None = None, fix: str | None = None) -> None:
        super().__init__(f"{detail}; {fix}" if fix else detail)
        self.detail = detail
        self.field = field
        self.fix = fix


class NotFound(DecideError, LookupError):
    """The thing named does not exist (a loop, a version, a model, an event)."""


class Invalid(DecideError, ValueError):
    """An input or a setting is wrong; ``field`` names it."""


class Conflict(DecideError):
    """The request contradicts what exists (a name already taken)."""


class Unavailable(DecideError, RuntimeError):
    """A dependency (database, event log, model backend) cannot serve now; retrying later may work."""
