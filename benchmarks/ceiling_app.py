"""The ceiling for the API benchmark: bare Flask that answers /rank and /reward like decide, and does nothing else.

``benchmarks/api_load.py`` serves this app with the same gunicorn configuration
(worker class, workers, threads) as ``decide serve`` and drives it with the same
requests, so that decide's throughput divided by this app's measures decide's
own cost: validation, featurization, the policy, event logging, metrics.

It parses the JSON request and encodes its answer with orjson, the JSON library
decide uses (the standard ``json`` module would cost the ceiling 17 % more CPU per
request and flatter decide's ratio), checks the fields it needs, and returns a response
of the same shape as decide's (``eventId``, ``rewardActionId``, ``ranking`` with
a probability for every action, ``policyVersion``, ``loop``) with uniform
probabilities. No learning, no logging, no storage, no metrics.

Run it by hand with
``python -m gunicorn benchmarks.ceiling_app:app --worker-class gthread --workers 2 --threads 4``.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

import orjson
from flask import Flask, Response, request

app = Flask(__name__)


def _json(body: dict[str, Any], status: int) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


def _body() -> Any:
    try:
        return orjson.loads(request.get_data())
    except orjson.JSONDecodeError:
        return None


def _problem(detail: str) -> Response:
    return _json({"type": "about:blank", "title": "Invalid request", "status": 400, "detail": detail}, 400)


@app.post("/rank")
def rank():
    body = _body()
    if not isinstance(body, dict) or not isinstance(body.get("actions"), list) or not body["actions"]:
        return _problem("actions: a non-empty list of actions is required")
    ids = [action.get("id") for action in body["actions"] if isinstance(action, dict)]
    if len(ids) != len(body["actions"]) or not all(isinstance(i, str) and i for i in ids):
        return _problem("actions: every action needs a non-empty string id")
    excluded = set(body.get("excludedActions") or ())
    eligible = [i for i in ids if i not in excluded] or ids
    chosen = random.choice(eligible)
    probability = 1.0 / len(eligible)
    ranking = [{"id": chosen, "probability": probability}]
    ranking += [{"id": i, "probability": probability if i in eligible else 0.0} for i in ids if i != chosen]
    return _json(
        {
            "eventId": body.get("eventId") or uuid.uuid4().hex,
            "rewardActionId": chosen,
            "ranking": ranking,
            "policyVersion": 1,
            "loop": body.get("loop") or "default",
        },
        201,
    )


@app.post("/reward")
def reward():
    body = _body()
    if not isinstance(body, dict) or not isinstance(body.get("eventId"), str):
        return _problem("eventId: a string is required")
    value = body.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _problem("value: a finite number is required")
    return _json({"eventId": body["eventId"], "status": "accepted"}, 202)


@app.get("/readyz")
def readyz():
    return {"status": "ready"}
