"""Options and output that several commands share."""

from __future__ import annotations

import json
from typing import Any

import click

from decide.config import Settings


class SettingOption(click.Option):
    """An option whose default is a deployment setting: its ``DECIDE_*`` variable when set, else the built-in default.

    ``--help`` shows the built-in default; the variable is read when the command runs.
    """

    def __init__(self, *args: Any, setting: str, **kwargs: Any) -> None:
        super().__init__(*args, default=getattr(Settings, setting), **kwargs)
        self.setting = setting

    def get_default(self, ctx: click.Context, call: bool = True) -> Any:
        if not call:
            return super().get_default(ctx, call=False)
        return getattr(Settings.from_env(), self.setting)


def from_settings(name: str, *, shown: bool = True) -> dict[str, Any]:
    """Keywords of an option whose default is the deployment setting ``name``."""
    return {"cls": SettingOption, "setting": name, "show_default": shown}


database_option = click.option(
    "--database-url", **from_settings("database_url"), help="SQLAlchemy URL: sqlite:///file.db or postgresql://user:pass@host/db."
)

settings_option = click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="A setting, value in JSON (repeatable).")


def parse_settings(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``--set KEY=VALUE`` options as a dict; a value that is not JSON is taken as a string."""
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, separator, raw = pair.partition("=")
        if not separator:
            raise click.BadParameter(f"'{pair}' is not KEY=VALUE", param_hint="--set")
        try:
            settings[key] = json.loads(raw)
        except json.JSONDecodeError:
            settings[key] = raw
    return settings


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))
