"""``decide worker``: join decisions with rewards and learn, until stopped."""

from __future__ import annotations

import click

from decide.cli.command import Command
from decide.cli.database import event_log, existing, redacted
from decide.cli.options import database_option, from_settings
from decide.cli.process import stop_requested
from decide.config import Settings


@click.command(cls=Command)
@database_option
@click.option("--metrics-port", type=int, **from_settings("worker_metrics_port", shown=False), help="Serve Prometheus metrics on this port.")
def worker(database_url: str, metrics_port: int) -> None:
    """Join decisions with rewards and learn, until SIGTERM."""
    import logging

    from prometheus_client import CollectorRegistry, start_http_server

    from decide.pipeline.metrics import PipelineMetrics
    from decide.pipeline.worker import Worker
    from decide.store.db import writer_sessions

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings.from_env(database_url=database_url, worker_metrics_port=metrics_port)
    engine = existing(settings.database_url)
    registry = CollectorRegistry()
    if metrics_port:
        start_http_server(metrics_port, addr="127.0.0.1", registry=registry)
    pipeline = Worker(writer_sessions(engine), event_log(settings, engine), settings, metrics=PipelineMetrics(registry))
    metrics = f", metrics on http://127.0.0.1:{metrics_port}/metrics" if metrics_port else ""
    click.echo(
        f"decide worker learns from database {redacted(database_url)}, event log {settings.event_log} "
        f"({settings.partitions} partitions){metrics}"
    )
    pipeline.run(stop_requested())
    pipeline.close()

