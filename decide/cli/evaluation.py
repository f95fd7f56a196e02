"""``decide simulate``, ``decide evaluate`` and ``decide report``: simulations and off-policy evaluation.

Heavy imports (numpy, the store, matplotlib) happen inside the commands so that
``decide --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import click

from decide.cli.command import Command
from decide.cli.database import existing
from decide.cli.options import database_option, from_settings
from decide.config import LoopConfig
from decide.errors import NotFound

LogSource = Callable[..., Any]


def _log_options(command: LogSource) -> LogSource:
    """Where a log comes from: a loop in the database (and a time range), or a dsjson file."""
    options = [
        click.option("--loop", help="Read this loop's archived decisions from the database."),
        click.option("--since", help="Only decisions at or after this time (ISO 8601, UTC by default, or epoch seconds)."),
        click.option("--until", help="Only decisions before this time."),
        click.option("--limit", type=click.IntRange(min=1), help="Only the newest N decisions."),
        database_option,
        click.option("--dsjson", "dsjson_in", type=click.File("r"), help="Read the log from a decision-service JSON lines file instead."),
        click.option(
            "--config", "config_json",
            help='Loop settings (JSON) a dsjson log was featurized with, e.g. \'{"featureDimension": 64}\'; defaults otherwise.',
        ),
        click.option("--candidate", "candidates", multiple=True, metavar="SPEC",
                     help="Also evaluate this policy, e.g. linucb:alpha=2,explorationFloor=0.1 (repeatable)."),
        click.option("--confidence", default=0.95, show_default=True, type=click.FloatRange(0, 1, min_open=True, max_open=True)),
        click.option("--blocks", default=200, show_default=True, type=click.IntRange(min=2),
                     help="Blocks of consecutive events: the unit of intervals and of candidates' learning."),
        click.option("--progress/--no-progress", default=None, help="Progress bars (default: when stderr is a terminal)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _progress(flag: bool | None) -> bool:
    return sys.stderr.isatty() if flag is None else flag


def _load(loop: str | None, since: str | None, until: str | None, limit: int | None, database_url: str,
          dsjson_in: IO[str] | None, config_json: str | None) -> Any:
    """The log and its loop configuration; what is missing is an error that says so."""
    from decide.evaluation.logs import LoopLog, loop_log, parse_time, read_dsjson
    from decide.store import queries
    from decide.store.db import sessions

    start = parse_time(since) if since else None
    end = parse_time(until) if until else None
    if dsjson_in is not None:
        try:
            settings = json.loads(config_json) if config_json else {}
        except json.JSONDecodeError as error:
            raise click.BadParameter(f"not JSON ({error})", param_hint="--config") from error
        config = LoopConfig.from_json(settings)
        examples = [e for e in read_dsjson(dsjson_in) if (start is None or e.decision.timestamp >= start)
                    and (end is None or e.decision.timestamp < end)]
        return LoopLog(loop or Path(dsjson_in.name).stem, config, examples[-limit:] if limit else examples, [])
    if not loop:
        raise click.UsageError("say which log to read: --loop NAME (from the database) or --dsjson FILE")
    engine = existing(database_url)
    try:
        with sessions(engine)() as session:
            return loop_log(session, loop, start, end, limit)
    except queries.LoopNotFound as error:  # the answer says where the names are
        raise NotFound(error.detail, field="--loop", fix="list loops with `decide loops list`") from error
    finally:
        engine.dispose()


def _options(confidence: float, blocks: int) -> Any:
    from decide.evaluation.offline import Options

    return Options(blocks=blocks, confidence=confidence)


@click.command(cls=Command)
@click.argument("scenario")
@click.option("--rounds", type=click.IntRange(min=1), help="Override the scenario's number of rounds.")
@click.option("--seeds", help="Comma-separated seeds, overriding the scenario's.")
@click.option("--policy", "policies", multiple=True, help="Run only this policy of the scenario (repeatable).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Directory for results.json, curves.csv and report.html [default: ./simulation-<scenario>].")
@click.option("--url", help="Run against a live decide at this URL (e.g. http://127.0.0.1:8080) instead of in process.")
@click.option("--api-key", **from_settings("api_key", shown=False), help="Key for a service that requires one.")
@click.option("--loop-prefix", default="sim-", show_default=True, help="Prefix of the loops created over HTTP.")
@click.option("--check-estimators", "logging_label", metavar="POLICY",
              help="Also estimate every policy from POLICY's log (first seed) and check the estimates against the simulator's truth.")
@click.option("--report/--no-report", default=True, show_default=True, help="Write report.html.")
@click.option("--progress/--no-progress", default=None, help="Progress bars (default: when stderr is a terminal).")
def simulate(scenario: str, rounds: int | None, seeds: str | None, policies: tuple[str, ...], out: Path | None, url: str | None,
             api_key: str | None, loop_prefix: str, logging_label: str | None, report: bool, progress: bool | None) -> None:
    """Run the policies of SCENARIO (a file, or the name of a built-in one) and compare their regret."""
    from simulations.runner import run, run_http
    from simulations.scenario import ScenarioError, load_scenario

    try:
        parsed = [int(seed) for seed in seeds.split(",")] if seeds else None
        plan = load_scenario(scenario).select(list(policies) or None, rounds, parsed)
    except (ScenarioError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    if url and logging_label:
        raise click.UsageError("--check-estimators runs in process; leave out --url")
    if url:
        from decide.client import Client

        client = Client(url, api_key=api_key)
        try:
            result = run_http(plan, client, loop_prefix, _progress(progress))
        except OSError as error:
            raise click.ClickException(f"cannot reach decide at {url}: {error}") from error
        finally:
            client.close()
    else:
        result = run(plan, keep_log=bool(logging_label), progress=_progress(progress))
    results = result.to_json()
    if logging_label:
        from simulations.check import check_estimators

        try:
            results["offline"] = check_estimators(result, logging_label, _progress(progress))
        except ValueError as error:
            raise click.ClickException(f"--check-estimators: {error}") from error
    directory = out or Path(f"simulation-{plan.name}")
    paths = result.write(directory, results)
    if report:
        from decide.evaluation.report import simulation_report

        paths["report"] = directory / "report.html"
        paths["report"].write_text(simulation_report(results))
    _echo_table(
        ["policy", "mean reward", "cumulative regret", "± s.e.", "decisions/s"],
        [[row["policy"], f"{row['mean_reward']:.4f}", f"{row['cumulative_regret']:.1f}", f"{row['regret_std_error']:.1f}",
          f"{row['decisions_per_second']:.0f}"] for row in result.summary()],
    )
    for name, path in paths.items():
        click.echo(f"{name}: {path}")


def _echo_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    for row in [headers, *rows]:
        click.echo("  ".join(str(cell).rjust(width) if i else str(cell).ljust(width) for i, (cell, width) in enumerate(zip(row, widths))))


@click.command(cls=Command)
@_log_options
@click.option("--export-dsjson", type=click.File("w"), help="Also write the log read as decision-service JSON lines (for Vowpal Wabbit).")
@click.option("--export-only", is_flag=True, help="Only export; estimate nothing.")
@click.option("--optimize", is_flag=True, help="Search policy settings and recommend one only if it is reliably better.")
@click.option("--search", multiple=True, metavar="SPEC", help="Settings to search with --optimize, e.g. 'linucb:ridge=0.3|1|3' (repeatable; default: the loop's model settings).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Directory for evaluation.json and estimates.csv.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def evaluate(loop: str | None, since: str | None, until: str | None, limit: int | None, database_url: str, dsjson_in: IO[str] | None,
             config_json: str | None, candidates: tuple[str, ...], confidence: float, blocks: int, progress: bool | None,
             export_dsjson: IO[str] | None, export_only: bool, optimize: bool, search: tuple[str, ...], out: Path | None,
             as_json: bool) -> None:
    """Estimate how the online policy, the baseline, uniform and named candidates would do on a loop's traffic."""
    from decide.evaluation import offline
    from decide.evaluation.logs import write_dsjson

    log = _load(loop, since, until, limit, database_url, dsjson_in, config_json)
    if export_dsjson is not None:
        count = write_dsjson(log.examples, export_dsjson)
        click.echo(f"exported {count} decisions to {export_dsjson.name}", err=True)
        if export_only:
            return
    options = _options(confidence, blocks)
    try:
        if optimize:
            recommendation = offline.optimize(log.examples, log.config, search or None, options, _progress(progress))
            evaluation, document = recommendation.evaluation, recommendation.to_json()
        else:
            evaluation = offline.compare(log.examples, log.config, candidates, options, _progress(progress))
            document = evaluation.to_json()
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    document = {"loop": log.loop, **document}
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "evaluation.json").write_text(json.dumps(document, indent=1))
        with (out / "estimates.csv").open("w", newline="") as stream:
            evaluation.write_csv(stream)
    if as_json:
        click.echo(json.dumps(document, indent=1))
        return
    click.echo(f"loop {log.loop}: {evaluation.events} decisions, {confidence:.0%} intervals")
    _echo_table(
        ["policy", *(name.upper() for name in evaluation.results[0].estimates), "ESS"],
        [[r.label, *(f"{e.value:.4f} [{e.lower:.4f}, {e.upper:.4f}]" for e in r.estimates.values()),
          f"{r.diagnostics.effective_sample_size:.0f}"] for r in evaluation.results],
    )
    if optimize:
        click.echo(document["message"])


@click.command(cls=Command)
@_log_options
@click.option("--simulation", type=click.File("r"), help="Report on a simulation's results.json instead of a log.")
@click.option("-o", "--output", type=click.File("w"), default="report.html", show_default=True, help="Where to write the HTML.")
def report(loop: str | None, since: str | None, until: str | None, limit: int | None, database_url: str, dsjson_in: IO[str] | None,
           config_json: str | None, candidates: tuple[str, ...], confidence: float, blocks: int, progress: bool | None,
           simulation: IO[str] | None, output: IO[str]) -> None:
    """Write a self-contained HTML report of a loop's traffic, a dsjson log, or a simulation."""
    from decide.evaluation import offline
    from decide.evaluation.report import loop_report, simulation_report

    if simulation is not None:
        output.write(simulation_report(json.load(simulation)))
    else:
        log = _load(loop, since, until, limit, database_url, dsjson_in, config_json)
        try:
            evaluation = offline.compare(log.examples, log.config, candidates, _options(confidence, blocks), _progress(progress))
        except ValueError as error:
            raise click.ClickException(str(error)) from error
        output.write(loop_report(log.loop, log.examples, evaluation, log.versions))
    click.echo(f"report: {output.name}", err=True)
