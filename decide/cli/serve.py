"""``decide serve``: the API under gunicorn, a learner and the model backends, supervised as one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time

import click

from decide.cli.command import Command
from decide.cli.database import event_log, prepare, redacted
from decide.cli.options import database_option, from_settings
from decide.cli.process import stop_requested
from decide.config import Settings


@click.command(cls=Command)
@click.option("--host", **from_settings("host"))
@click.option("--port", type=int, **from_settings("port"))
@database_option
@click.option("--workers", type=int, **from_settings("workers"), help="gunicorn worker processes.")
@click.option("--threads", type=int, **from_settings("threads"), help="Threads per worker process.")
@click.option("--learner/--no-learner", default=True, show_default=True, help="Also run one pipeline worker.")
@click.option("--backends/--no-backends", default=True, show_default=True, help="Also run the model backends' supervisor.")
def serve(host: str, port: int, database_url: str, workers: int, threads: int, learner: bool, backends: bool) -> None:
    """Run the API under gunicorn (and a learner), on the embedded defaults unless configured."""
    settings = Settings.from_env(database_url=database_url, host=host, port=port, workers=workers, threads=threads)
    prepare(settings)
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
        *(["--access-logfile", "-"] if settings.access_log else []),
    ]
    children = [subprocess.Popen(gunicorn, env=environment)]
    if learner:
        children.append(subprocess.Popen([sys.executable, "-m", "decide", "worker"], env=environment))
    if backends:
        children.append(subprocess.Popen([sys.executable, "-m", "decide", "models", "serve"], env=environment))
    click.echo(f"decide listens on http://{host}:{port} (database {redacted(database_url)}, event log {settings.event_log})")
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
    stopping = stop_requested()
    while not stopping() and all(child.poll() is None for child in children):
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
    if failed and not stopping():
        raise SystemExit(f"a decide process exited with status {failed[0]}")


def _check_event_log(settings: Settings) -> None:
    """Fail before starting any process when the event log cannot be had (and create Kafka topics once)."""
    from decide.store.db import make_engine

    engine = make_engine(settings.database_url)
    event_log(settings, engine).close()
    engine.dispose()
