"""``decide models``: manage the model registry in the database, and run the backends' supervisor."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from decide.cli.command import Group
from decide.cli.database import existing, writers
from decide.cli.options import database_option, echo_json, from_settings, parse_settings, settings_option
from decide.cli.process import stop_requested

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

backend_dir_option = click.option(
    "--backend-dir", **from_settings("backend_dir", shown=False), help="Directory of the backends' sockets (default: a private temp directory)."
)


@click.group(cls=Group)
def models() -> None:
    """Register models, and serve them through batched backends (docs/models.md)."""


@contextmanager
def _transaction(database_url: str) -> Iterator[Session]:
    """One writer transaction on the existing database at ``database_url``."""
    with writers(database_url).begin() as session:
        yield session


@models.command("list")
@database_option
def list_models(database_url: str) -> None:
    from decide.serving import registry

    with _transaction(database_url) as session:
        echo_json([model.to_json() for model in registry.all_models(session).values()])


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

    spec = ModelSpec.model_validate({"target": target, "kind": kind, **parse_settings(settings)})
    with _transaction(database_url) as session:
        echo_json(registry.register(session, name, spec).to_json())


@models.command()
@click.argument("name")
@database_option
@backend_dir_option
def show(name: str, database_url: str, backend_dir: str) -> None:
    """NAME's settings, and what each of its replicas reports now."""
    from decide.serving import registry
    from decide.serving.client import Backends
    from decide.serving.protocol import default_directory

    with _transaction(database_url) as session:
        model = registry.get(session, name)
    backends = Backends(backend_dir or default_directory())
    reports = backends.status(name, model.spec.replicas, timeout=0.5)
    backends.close()
    backends_json = [{"replica": index, "up": report is not None, **(report or {})} for index, report in enumerate(reports)]
    echo_json(model.to_json() | {"backends": backends_json})


@models.command()
@click.argument("name")
@settings_option
@database_option
def update(name: str, settings: tuple[str, ...], database_url: str) -> None:
    """Change NAME's settings as a new version; with no --set, reload its code as a new version."""
    from decide.serving import registry

    with _transaction(database_url) as session:
        echo_json(registry.update(session, name, parse_settings(settings)).to_json())


@models.command()
@click.argument("name")
@database_option
def remove(name: str, database_url: str) -> None:
    """Remove NAME; its replicas stop, and loops listing it answer with their fallback."""
    from decide.serving import registry

    with _transaction(database_url) as session:
        registry.remove(session, name)
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
    from decide.store.db import sessions

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    supervisor = Supervisor(sessions(existing(database_url)), backend_dir or default_directory(), interval=interval, metrics_registry=CollectorRegistry())
    supervisor.run(stop_requested())
