"""Errors as RFC 9457 ``application/problem+json``: what went wrong, which field, how to fix it."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

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


def invalid(field: str, detail: str) -> Problem:
    return Problem(400, "Invalid request", detail, field=field)


def not_found(detail: str, field: str | None = None) -> Problem:
    return Problem(404, "Not found", detail, field=field)


def from_validation_error(error: ValidationError) -> Problem:
    """One problem naming every bad field, first one in ``field``, with pydantic's reason made readable."""
    errors = [
        {"field": _path(item["loc"]), "detail": _readable(item)}
        for item in error.errors(include_url=False, include_context=False, include_input=False)
    ]
    first = errors[0]
    detail = "; ".join(f"{e['field']}: {e['detail']}" if e["field"] else e["detail"] for e in errors[:5])
    return Problem(400, "Invalid request", detail, field=first["field"] or None, errors=errors)


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
    app.register_error_handler(ValidationError, lambda error: response(from_validation_error(error)))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        detail = {
            404: "no such endpoint; see /openapi.json for the API",
            405: f"method not allowed here; allowed: {', '.join(getattr(error, 'valid_methods', None) or [])}",
            413: f"the request body is larger than the limit of {app.config.get('MAX_CONTENT_LENGTH')} bytes; "
            "send fewer or smaller features, or raise DECIDE_MAX_BODY_BYTES",
        }.get(error.code or 500, error.description or "")
        return response(Problem(error.code or 500, error.name, detail))

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        log.exception("unhandled error")
        return response(Problem(500, "Internal error", "decide failed unexpectedly; the error is in its log"))
