"""Offline evaluation of a loop over HTTP: the estimator table as JSON, and the HTML report.

Both read the loop's archive (``since``/``until`` as epoch seconds or ISO 8601,
newest ``limit`` decisions) and evaluate the online policy, the baseline,
uniform, and every ``candidate`` query parameter (``linucb:alpha=2``).
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from decide.api.context import services
from decide.api.problems import invalid, not_found
from decide.evaluation.logs import LogError, LoopLog, loop_log, parse_time
from decide.evaluation.offline import Evaluation, Options, compare
from decide.evaluation.report import loop_report
from decide.store import queries

blueprint = Blueprint("evaluation", __name__, url_prefix="/loops")

DEFAULT_LIMIT = 20_000
MAX_LIMIT = 500_000


def _evaluate(name: str) -> tuple[LoopLog, Evaluation]:
    args = request.args
    since, until = _time("since"), _time("until")
    limit = int(_number("limit", args.get("limit", str(DEFAULT_LIMIT)), int, 1, MAX_LIMIT))
    confidence = _number("confidence", args.get("confidence", "0.95"), float, 0.5, 0.999)
    with services().sessions() as session:
        try:
            log = loop_log(session, name, since, until, limit)
        except queries.LoopNotFound as error:
            raise not_found(str(error)) from error
    if not any(example.learnable for example in log.examples):
        raise not_found(f"loop '{name}' has no decisions with joined rewards in this range yet; widen since/until or wait for rewards")
    try:
        return log, compare(log.examples, log.config, args.getlist("candidate"), Options(confidence=confidence))
    except ValueError as error:
        raise invalid("candidate", str(error)) from error


def _time(field: str) -> float | None:
    text = request.args.get(field)
    try:
        return None if text is None else parse_time(text)
    except LogError as error:
        raise invalid(field, str(error)) from error


def _number(field: str, text: str, kind: type, low: float, high: float) -> float:
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise invalid(field, f"{field} must be a number from {low:g} to {high:g}, got {text!r}")
    return value


@blueprint.get("/<name>/evaluation")
def evaluation(name: str):
    log, result = _evaluate(name)
    return {"loop": name, "policyVersion": log.versions[0]["version"] if log.versions else None, **result.to_json()}


@blueprint.get("/<name>/report")
def report(name: str) -> Response:
    log, result = _evaluate(name)
    return Response(loop_report(name, log.examples, result, log.versions), mimetype="text/html")
