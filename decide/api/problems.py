"""Errors as RFC 9457 ``application/problem+json``: what went wrong, which field, how to fix it.

decide's errors (``decide.errors``) become problems here, in one table, for
every endpoint; a blueprint raises them and translates nothing. ``Problem`` is
for what only HTTP has to say (401, 410, readiness).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from decide.errors import Conflict, DecideError, Invalid, NotFound, Unavailable
from decide.loops import LoopExists
from decide.serving.registry import ModelExists

log = logging.getLogger(__name__)

PROBLEM_TYPE = "application/problem+json"


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str, field: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.field = field
        self.extra = extra

    def body(self) -> dict[str, Any]:
        body = {"type": "about:blank", "title": self.title, "status": self.status, "detail": self.detail}
        if self.field is not None:
            body["field"] = self.field
        return body | self.extra


PROBLEMS: dict[type[DecideError], tuple[int, str]] = {
    NotFound: (404, "Not found"),
    Invalid: (400, "Invalid request"),
    Conflict: (409, "Conflict"),
    LoopExists: (409, "Loop exists"),
    ModelExists: (409, "Model exists"),
    Unavailable: (503, "Unavailable"),
}
"""Status and title of each kind of error; a subclass listed here has its own title."""


def problem(error: DecideError) -> Problem:
    """The problem of the most specific kind ``error`` is; its detail ends with the fix, if it has one."""
    status, title = next(PROBLEMS[kind] for kind in type(error).__mro__ if kind in PROBLEMS)
    return Problem(status, title, str(error), field=error.field)


def invalid(field: str, detail: str) -> Invalid:
    return Invalid(detail, field=field)


def not_found(detail: str, field: str | None = None) -> NotFound:
    return NotFound(detail, field=field)


def from_validation_error(error: ValidationError) -> Problem:
    """One problem naming every bad field, first one in ``field``, with pydantic's reason made readable."""
    errors = [
        {"field": _path(item["loc"]), "detail": _readable(item)}
        for item in error.errors(include_url=False, include_context=False, include_input=False)
    ]
    first = errors[0]
    detail = "; ".join(f"{e['field']}: {e['detail']}" if e["field"] else e["detail"] for e in errors[:5])
    return Problem(400, PROBLEMS[Invalid][1], detail, field=first["field"] or None, errors=errors)


def _path(location: tuple[Any, ...]) -> str:
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part not in ("function-after", "function-before") and not str(part).startswith(("list[", "dict[", "json-or")):
            path += f".{part}" if path else str(part)
    return path


def _readable(item: dict[str, Any]) -> str:
    kind = item["type"]
    if kind == "missing":
        return "this field is required"
    if kind == "json_invalid":
        return "the body is not valid JSON; send a JSON object with Content-Type: application/json"
    if kind == "extra_forbidden":
        return "unknown field; remove it (see the OpenAPI document at /openapi.json)"
    if kind == "finite_number":
        return "must be a finite number (not NaN or Infinity)"
    return item["msg"].removeprefix("Value error, ")


def response(problem: Problem) -> Response:
    return Response(json.dumps(problem.body()), status=problem.status, mimetype=PROBLEM_TYPE)


def register(app: Flask) -> None:
    """Every error leaves as problem+json, including Flask's own 404/405/413 and unexpected ones."""
    app.register_error_handler(Problem, response)
    app.register_error_handler(DecideError, lambda error: response(problem(error)))
    app.register_error_handler(ValidationError, lambda error: response(from_validation_error(error)))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        detail = {
            404: "no such endpoint; see /openapi.json for the API",
            405: f"method not allowed here; allowed: {', '.join(getattr(error, 'valid_methods', None) or [])}",
            413: f"the request body is larger than the limit of {app.config.get('MAX_CONTENT_LENGTH')} bytes; "
            "send fewer or smaller features, or raise DECIDE_MAX_BODY_BYTES",
        }.get(error.code or 500, error.description or "")
        title = PROBLEMS[NotFound][1] if error.code == 404 else error.name
        return response(Problem(error.code or 500, title, detail))

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        log.exception("unhandled error")
        return response(Problem(500, "Internal error", "decide failed unexpectedly; the error is in its log"))
