"""``decide models``: manage the model registry in the database, and run the backends' supervisor."""

from __future__ import annotations

import json
import signal
from typing import Any

import click

from decide.config import Settings

database_option = click.option(
    "--database-url", envvar="DECIDE_DATABASE_URL", default=Settings.database_url, show_default=True,
    help="SQLAlchemy URL of decide's database.",
)
backend_dir_option = click.option(
    "--backend-dir", envvar="DECIDE_BACKEND_DIR", default="", help="Directory of the backends' sockets (default: a private temp directory)."
)
settings_option = click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="A model setting, value in JSON (repeatable).")


@click.group()
def models() -> None:
    """Register models, and serve them through batched backends (docs/models.md)."""


def _model_problem(error: Exception) -> click.ClickException | None:
    from pydantic import ValidationError

    from decide.serving import registry

    if isinstance(error, ValidationError):
        first = error.errors(include_url=False)[0]
        return click.BadParameter(first["msg"].removeprefix("Value error, "), param_hint=".".join(map(str, first["loc"])) or "--set")
    if isinstance(error, (registry.ModelNotFound, registry.ModelExists)):
        return click.ClickException(str(error))
    return None


def _with_session(database_url: str, operation):
    from decide.cli import in_write_transaction

    return in_write_transaction(database_url, operation, _model_problem)


def _changes(pairs: tuple[str, ...]) -> dict[str, Any]:
    from decide.cli import _parse_settings

    return _parse_settings(pairs)


@models.command("list")
@database_option
def list_models(database_url: str) -> None:
    from decide.serving import registry

    click.echo(json.dumps(_with_session(database_url, lambda s: [model.to_json() for model in registry.all_models(s).values()]), indent=2))


@models.command()
@click.argument("name")
@click.argument("target")
@click.option("--kind", type=click.Choice(["python", "sklearn", "onnx"]), default="python", show_default=True)
@settings_option
@database_option
def register(name: str, target: str, kind: str, settings: tuple[str, ...], database_url: str) -> None:
    """Register NAME, served from TARGET (an import path 'package.module:attr', or a model file)."""
    from decide.serving import registry
    from decide.serving.spec import ModelSpec

    def operation(session):
        spec = ModelSpec.model_validate({"target": target, "kind": kind, **_changes(settings)})
        return registry.register(session, name, spec).to_json()

    click.echo(json.dumps(_with_session(database_url, operation), indent=2))


@models.command()
@click.argument("name")
@database_option
@backend_dir_option
def show(name: str, database_url: str, backend_dir: str) -> None:
    """NAME's settings, and what each of its replicas reports now."""
    from decide.serving import registry
    from decide.serving.client import Backends
    from decide.serving.protocol import default_directory

    model = _with_session(database_url, lambda s: registry.get(s, name))
    backends = Backends(backend_dir or default_directory())
    reports = backends.status(name, model.spec.replicas, timeout=0.5)
    backends.close()
    backends_json = [{"replica": index, "up": report is not None, **(report or {})} for index, report in enumerate(reports)]
    click.echo(json.dumps(model.to_json() | {"backends": backends_json}, indent=2))


@models.command()
@click.argument("name")
@settings_option
@database_option
def update(name: str, settings: tuple[str, ...], database_url: str) -> None:
    """Change NAME's settings as a new version; with no --set, reload its code as a new version."""
    from decide.serving import registry

    click.echo(json.dumps(_with_session(database_url, lambda s: registry.update(s, name, _changes(settings)).to_json()), indent=2))


@models.command()
@click.argument("name")
@database_option
def remove(name: str, database_url: str) -> None:
    """Remove NAME; its replicas stop, and loops listing it answer with their fallback."""
    from decide.serving import registry

    _with_session(database_url, lambda s: registry.remove(s, name))
    click.echo(f"removed model '{name}'")


@models.command()
@database_option
@backend_dir_option
@click.option("--interval", default=0.5, show_default=True, type=float, help="Seconds between checks of the registry and the replicas.")
def serve(database_url: str, backend_dir: str, interval: float) -> None:
    """Run every registered model's replicas, restarting and replacing them as needed, until SIGTERM."""
    import logging

    from prometheus_client import CollectorRegistry

    from decide.serving.protocol import default_directory
    from decide.serving.supervisor import Supervisor
    from decide.store.db import make_engine, sessions

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    supervisor = Supervisor(sessions(make_engine(database_url)), backend_dir or default_directory(), interval=interval, metrics_registry=CollectorRegistry())
    stopping = False

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    supervisor.run(lambda: stopping)
