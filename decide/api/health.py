"""Liveness, readiness and metrics for orchestrators and Prometheus."""

from __future__ import annotations

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.exc import SQLAlchemyError

from decide.api.context import services
from decide.api.problems import Problem
from decide.store import queries
from decide.store.db import is_current

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz():
    """The process answers; says nothing about its dependencies."""
    return {"status": "ok"}


@blueprint.get("/readyz")
def readyz():
    """Ready when the database answers, its schema is current and the default loop exists."""
    context = services()
    try:
        if not is_current(context.engine):
            raise Problem(503, "Not ready", "the database schema is not at the newest migration; run `decide migrate`")
        with context.sessions() as session:
            loops = queries.current_versions(session)
    except SQLAlchemyError as error:
        raise Problem(503, "Not ready", f"the database does not answer: {error.__class__.__name__}") from error
    if context.settings.default_loop not in loops:
        raise Problem(503, "Not ready", f"the default loop '{context.settings.default_loop}' does not exist; run `decide migrate`")
    return {"status": "ready", "loops": len(loops)}


@blueprint.get("/metrics")
def metrics():
    return Response(services().metrics.exposition(), mimetype=CONTENT_TYPE_LATEST)
