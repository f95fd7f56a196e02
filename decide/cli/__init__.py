"""The ``decide`` command: one module per group of commands, errors turned into messages by ``decide.cli.command``."""

from __future__ import annotations

import click

from decide.cli import demo, evaluation, loops, migrate, models, serve, worker
from decide.cli.command import Group


@click.group(cls=Group)
@click.version_option(package_name="decide", prog_name="decide")
def main() -> None:
    """decide: online contextual-bandit decisions with a Personalizer-compatible API."""


for command in (migrate.migrate, serve.serve, worker.worker, models.models, loops.loops,
                evaluation.simulate, evaluation.evaluate, evaluation.report, demo.demo):
    main.add_command(command)
