"""The Flask app factory: every dependency is built here or passed in, none is global."""

from __future__ import annotations

import time

from flask import Flask, Response, g, request
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from decide.api import decisions, evaluation, health, loops, openapi, personalizer, problems
from decide.api.context import Services
from decide.api.decider import Decider
from decide.api.metrics import Metrics
from decide.api.models import blueprint as models_blueprint
from decide.config import Settings
from decide.events.log import EventLog
from decide.loops import Loops
from decide.store.db import make_engine, sessions, writer_sessions

OPEN_ENDPOINTS = {"health.healthz", "health.readyz", "health.metrics", "openapi.openapi"}


def create_app(settings: Settings, *, engine: Engine | None = None, event_log: EventLog | None = None) -> Flask:
    """Build the API; ``engine`` and ``event_log`` default to those the settings describe."""
    from decide.events.factory import open_log

    engine = engine or make_engine(settings.database_url)
    readers = sessions(engine)
    event_log = event_log or open_log(settings, engine)
    metrics = Metrics(CollectorRegistry())
    writers = writer_sessions(engine)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    app.extensions["decide"] = Services(
        settings=settings,
        engine=engine,
        sessions=readers,
        writer_sessions=writers,
        event_log=event_log,
        metrics=metrics,
        decider=Decider(engine, event_log, settings, metrics),
        loops=Loops(readers, writers),
    )
    problems.register(app)
    app.register_blueprint(models_blueprint)
    for module in (decisions, personalizer, loops, evaluation, health, openapi):
        app.register_blueprint(module.blueprint)

    @app.before_request
    def authenticate_and_time() -> None:
        g.started = time.perf_counter()
        if settings.api_keys and request.endpoint not in OPEN_ENDPOINTS:
            key = request.headers.get("Ocp-Apim-Subscription-Key")
            if key not in settings.api_keys:
                raise problems.Problem(
                    401, "Unauthorized", "send a valid key in the Ocp-Apim-Subscription-Key header", field="Ocp-Apim-Subscription-Key"
                )

    @app.after_request
    def record(response: Response) -> Response:
        endpoint = request.endpoint or "unknown"
        metrics.child(metrics.requests, endpoint, str(response.status_code)).inc()
        if "started" in g:
            metrics.child(metrics.latency, endpoint).observe(time.perf_counter() - g.started)
        return response

    return app
