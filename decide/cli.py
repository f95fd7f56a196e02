"""The ``decide`` command: serve, work, migrate, manage loops, and a demo."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import click

from decide.config import ConfigError, LoopConfig, Settings
from decide.evaluation.commands import evaluate, report, simulate
from decide.serving.commands import models

database_option = click.option(
    "--database-url", envvar="DECIDE_DATABASE_URL", default=Settings.database_url, show_default=True,
    help="SQLAlchemy URL: sqlite:///file.db or postgresql://user:pass@host/db.",
)


@click.group()
def main() -> None:
    """decide: online contextual-bandit decisions with a Personalizer-compatible API."""


main.add_command(simulate)
main.add_command(evaluate)
main.add_command(report)


@main.command()
@database_option
def migrate(database_url: str) -> None:
    """Create or upgrade the database schema in place, and make sure the default loop exists."""
    _prepare(_settings(database_url))
    click.echo(f"database at {_redacted(database_url)} is up to date")


@main.command()
@click.option("--host", envvar="DECIDE_HOST", default="127.0.0.1", show_default=True)
@click.option("--port", envvar="DECIDE_PORT", default=8080, show_default=True, type=int)
@database_option
@click.option("--workers", envvar="DECIDE_WORKERS", default=2, show_default=True, type=int, help="gunicorn worker processes.")
@click.option("--threads", envvar="DECIDE_THREADS", default=4, show_default=True, type=int, help="Threads per worker process.")
@click.option("--learner/--no-learner", default=True, show_default=True, help="Also run one pipeline worker.")
@click.option("--backends/--no-backends", default=True, show_default=True, help="Also run the model backends' supervisor.")
def serve(host: str, port: int, database_url: str, workers: int, threads: int, learner: bool, backends: bool) -> None:
    """Run the API under gunicorn (and a learner), on the embedded defaults unless configured."""
    settings = _settings(database_url)
    _prepare(settings)
    _check_event_log(settings)
    environment = os.environ | {
        "DECIDE_DATABASE_URL": database_url,
        "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="decide-metrics-"),
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1"),
        "DECIDE_BACKEND_DIR": settings.backend_dir or tempfile.mkdtemp(prefix="decide-backends-"),
    }
    gunicorn = [
        sys.executable, "-m", "gunicorn", "decide.api.wsgi:app",
        "--bind", f"{host}:{port}", "--workers", str(workers), "--threads", str(threads),
        "--worker-class", "gthread", "--graceful-timeout", "10",
        *(["--access-logfile", "-"] if os.environ.get("DECIDE_ACCESS_LOG") else []),
    ]
    children = [subprocess.Popen(gunicorn, env=environment)]
    if learner:
        children.append(subprocess.Popen([sys.executable, "-m", "decide", "worker"], env=environment))
    if backends:
        children.append(subprocess.Popen([sys.executable, "-m", "decide", "models", "serve"], env=environment))
    click.echo(f"decide listens on http://{host}:{port} (database {_redacted(database_url)}, event log {settings.event_log})")
    click.echo(
        f"try:  curl -s -X POST http://{host}:{port}/rank -H 'Content-Type: application/json' "
        """-d '{"contextFeatures":[{"user":{"tier":"gold"}}],"actions":[{"id":"a"},{"id":"b"}]}'"""
    )
    if note := missing_kernels_note():
        click.echo(note, err=True)
    _supervise(children)


def missing_kernels_note() -> str | None:
    """What an operator should know when the install built no compiled kernels: same results, slower ranks."""
    from decide import features
    from decide.policies import distributions

    missing = [name for name, built in (("featurization", features.COMPILED), ("Thompson sampling", distributions.COMPILED)) if not built]
    if not missing:
        return None
    return (
        f"note: the compiled {' and '.join(missing)} kernel{'s are' if len(missing) > 1 else ' is'} not built "
        "(no C compiler at install), so ranks run the Python and numpy code: the same results, slower. "
        "Reinstall with gcc available to build them; see docs/decisions.md"
    )


def _supervise(children: list[subprocess.Popen]) -> None:
    """Run until a signal or a child's exit, then stop every child."""
    stopping = False

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping and all(child.poll() is None for child in children):
        time.sleep(0.2)
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
    failed = [child.returncode for child in children if child.returncode not in (0, -signal.SIGTERM)]
    if failed and not stopping:
        raise SystemExit(f"a decide process exited with status {failed[0]}")


@main.command()
@database_option
@click.option("--metrics-port", envvar="DECIDE_WORKER_METRICS_PORT", type=int, help="Serve Prometheus metrics on this port.")
def worker(database_url: str, metrics_port: int | None) -> None:
    """Join decisions with rewards and learn, until SIGTERM."""
    import logging

    from prometheus_client import CollectorRegistry, start_http_server

    from decide.pipeline.metrics import PipelineMetrics
    from decide.pipeline.worker import Worker
    from decide.store.db import make_engine, writer_sessions

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = _settings(database_url)
    engine = make_engine(settings.database_url)
    registry = CollectorRegistry()
    if metrics_port:
        start_http_server(metrics_port, addr="127.0.0.1", registry=registry)
    pipeline = Worker(writer_sessions(engine), _open_log(settings, engine), settings, metrics=PipelineMetrics(registry))
    stopping = False

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    pipeline.run(lambda: stopping)
    pipeline.close()


main.add_command(models)


@main.group()
def loops() -> None:
    """Manage decision loops directly in the database."""


def in_write_transaction(database_url: str, operation, translate: Callable[[Exception], click.ClickException | None]):
    """Run ``operation(session)`` in one write transaction; ``translate`` turns expected errors into messages."""
    from decide.store.db import make_engine, writer_sessions

    try:
        with writer_sessions(make_engine(database_url)).begin() as session:
            return operation(session)
    except Exception as error:
        problem = translate(error)
        if problem is None:
            raise
        raise problem from error


def _loop_problem(error: Exception) -> click.ClickException | None:
    from sqlalchemy.exc import IntegrityError

    from decide.store import queries

    if isinstance(error, ConfigError):
        return click.BadParameter(str(error), param_hint=error.field)
    if isinstance(error, (queries.LoopNotFound, queries.VersionNotFound)):
        return click.ClickException(str(error))
    if isinstance(error, IntegrityError):
        return click.ClickException("that loop already exists; change it with `decide loops configure`")
    return None


def _with_session(database_url: str, operation):
    return in_write_transaction(database_url, operation, _loop_problem)


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


def _version_json(row) -> dict[str, Any]:
    return {"version": row.version, "createdAt": row.created_at, "examplesLearned": row.examples_learned, "note": row.note, "config": json.loads(row.config)}


@loops.command("list")
@database_option
def list_loops(database_url: str) -> None:
    from decide.store import queries

    _echo_json(_with_session(database_url, lambda s: queries.current_versions(s)))


@loops.command()
@click.argument("name")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="A setting, value in JSON (repeatable).")
@database_option
def create(name: str, settings: tuple[str, ...], database_url: str) -> None:
    """Create loop NAME."""
    from pydantic import TypeAdapter, ValidationError

    from decide.api.schemas import LoopName
    from decide.store import queries

    try:
        TypeAdapter(LoopName).validate_python(name)
    except ValidationError as error:
        raise click.BadParameter("use letters, digits, '_', '.' and '-', starting with a letter or digit (at most 128)", param_hint="NAME") from error
    changes = _parse_settings(settings)
    _echo_json(_with_session(database_url, lambda s: _version_json(queries.create_loop(s, name, LoopConfig.from_json(changes)))))


@loops.command()
@click.argument("name")
@database_option
def show(name: str, database_url: str) -> None:
    from decide.store import queries

    _echo_json(_with_session(database_url, lambda s: _version_json(queries.current(s, name))))


@loops.command()
@click.argument("name")
@click.option("--set", "settings", multiple=True, required=True, metavar="KEY=VALUE", help="A setting, value in JSON (repeatable).")
@database_option
def configure(name: str, settings: tuple[str, ...], database_url: str) -> None:
    """Change settings of NAME, e.g. --set rewardWaitTime=60 --set policy='"linucb"'."""
    from decide.store import queries

    changes = _parse_settings(settings)
    _echo_json(_with_session(database_url, lambda s: _version_json(queries.configure(s, name, changes))))


@loops.command()
@click.argument("name")
@database_option
def versions(name: str, database_url: str) -> None:
    from decide.store import queries

    def operation(session):
        queries.current(session, name)
        return [{k: v for k, v in _version_json(row).items() if k != "config"} for row in queries.versions(session, name)]

    _echo_json(_with_session(database_url, operation))


@loops.command()
@click.argument("name")
@click.argument("version", type=int)
@database_option
def rollback(name: str, version: int, database_url: str) -> None:
    """Serve VERSION of NAME again (as a new version)."""
    from decide.store import queries

    _echo_json(_with_session(database_url, lambda s: _version_json(queries.rollback(s, name, version))))


@loops.command()
@click.argument("name")
@database_option
def reset(name: str, database_url: str) -> None:
    """Forget what NAME has learned (a new, empty version)."""
    from decide.store import queries

    _echo_json(_with_session(database_url, lambda s: _version_json(queries.reset(s, name))))


@loops.command()
@click.argument("name")
@click.confirmation_option(prompt="Delete the loop and all its policy versions?")
@database_option
def delete(name: str, database_url: str) -> None:
    """Delete loop NAME and its policy versions (archived examples stay)."""
    from decide.store import queries

    def operation(session):
        queries.current(session, name)
        queries.delete_loops(session, [name])

    _with_session(database_url, operation)
    click.echo(f"deleted loop '{name}'")


def _parse_settings(pairs: tuple[str, ...]) -> dict[str, Any]:
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


@main.command()
@click.option("--url", envvar="DECIDE_URL", default="http://127.0.0.1:8080", show_default=True)
@click.option("--loop", default="demo", show_default=True)
@click.option("--rounds", default=4000, show_default=True, type=int)
@click.option("--report-every", default=500, show_default=True, type=int)
@click.option("--seed", default=0, show_default=True, type=int)
def demo(url: str, loop: str, rounds: int, report_every: int, seed: int) -> None:
    """Drive a running service with a simulated population; watch the reward rate rise."""
    from decide.client import ApiError, Client
    from simulations.environments import LinearPayoff

    client = Client(url)
    try:
        client.request("POST", "/loops", {"name": loop, "config": {"rewardWaitTime": 1.0, "updateInterval": 0.5}})
    except ApiError as error:
        if error.status != 409:
            raise click.ClickException(f"could not create loop '{loop}': {error}") from error
    environment = LinearPayoff(seed=seed)
    total, block, best, random = 0.0, [], [], []
    click.echo(f"{'rounds':>8} {'reward rate':>12} {'random choice':>14} {'best possible':>14} {'policy version':>15}")
    for number in range(1, rounds + 1):
        played = environment.next_round()
        answer = client.rank(played.context, played.actions, loop=loop)
        value = environment.reward(played, answer["rewardActionId"])
        client.reward(answer["eventId"], value, loop=loop)
        block.append(value)
        best.append(played.expected[played.best])
        random.append(sum(played.expected.values()) / len(played.expected))
        total += value
        if number % report_every == 0:
            rates = [sum(values) / len(values) for values in (block, random, best)]
            click.echo(f"{number:>8} {rates[0]:>12.3f} {rates[1]:>14.3f} {rates[2]:>14.3f} {answer['policyVersion']:>15}")
            block, best, random = [], [], []
    click.echo(f"overall reward rate {total / rounds:.3f} over {rounds} rounds")


def _settings(database_url: str) -> Settings:
    """Deployment settings, with a bad ``DECIDE_*`` value reported as a message, not a traceback."""
    try:
        return Settings.from_env(database_url=database_url)
    except ConfigError as error:
        raise click.ClickException(str(error)) from error


def _prepare(settings: Settings) -> None:
    from decide.store import queries
    from decide.store.db import make_engine, migrate as upgrade, writer_sessions

    upgrade(settings.database_url)
    with writer_sessions(make_engine(settings.database_url)).begin() as session:
        queries.ensure_loop(session, settings.default_loop)


def _open_log(settings: Settings, engine):
    """The configured event log, or a message a person can act on (e.g. Kafka unreachable at start-up)."""
    from decide.events.factory import open_log
    from decide.events.log import LogUnavailable

    try:
        return open_log(settings, engine)
    except (LogUnavailable, ValueError) as error:
        raise click.ClickException(str(error)) from error


def _check_event_log(settings: Settings) -> None:
    """Fail before starting any process when the event log cannot be had (and create Kafka topics once)."""
    from decide.store.db import make_engine

    engine = make_engine(settings.database_url)
    _open_log(settings, engine).close()
    engine.dispose()


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
