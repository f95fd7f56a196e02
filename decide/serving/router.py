"""The API side of model loops: ask the chosen model's backend, within its deadline, or fall back.

A loop with ``models`` in its configuration is a model loop: its actions are
registered models, and a decision also gets the chosen model's prediction for
the request's context. The answer always comes by the model's deadline:

* the model answers in time: its prediction;
* it fails fast (its queue is full, it errors, no replica is up) and it has a
  ``fallback`` model: that model is asked with the time that is left;
* otherwise (the deadline passed, or the fallback failed too): the model's
  configured ``default``.

Any answer but the chosen model's own is labelled with the reason, in the
response and in the decision log.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session, sessionmaker

from decide.features import flatten
from decide.serving import registry
from decide.serving.client import LOST, Backends
from decide.serving.metrics import ModelMetrics
from decide.serving.protocol import ERROR, REJECTED, default_directory
from decide.serving.registry import Registered

ANSWERED = "answered"
DEADLINE = "deadline"
UNAVAILABLE = "unavailable"
UNREGISTERED = "unregistered"


@dataclass(frozen=True)
class Answer:
    prediction: Any
    answered_by: str | None
    """The model whose prediction this is; None when it is the configured default."""
    version: int | None
    latency: float
    fallback: str | None
    """Why the chosen model did not answer; None when it did."""

    def logged(self) -> dict[str, Any]:
        """The Decision event's fields."""
        return {
            "prediction": self.prediction,
            "answered_by": self.answered_by,
            "model_version": self.version,
            "model_latency": self.latency,
            "fallback": self.fallback,
        }

    def response(self) -> dict[str, Any]:
        """The rank response's fields."""
        fields: dict[str, Any] = {"prediction": self.prediction}
        if self.fallback is not None:
            fields["fallback"] = {"reason": self.fallback, "answeredBy": self.answered_by}
        return fields


class RegisteredModels:
    """This worker's copy of the registry, refreshed at most every ``poll_interval`` seconds."""

    def __init__(self, sessions: sessionmaker[Session], poll_interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.sessions = sessions
        self.poll_interval = poll_interval
        self.clock = clock
        self.models: dict[str, Registered] = {}
        self.checked_at = -float("inf")

    def get(self, name: str) -> Registered | None:
        if self.clock() - self.checked_at >= self.poll_interval:
            self._refresh()
        return self.models.get(name)

    def _refresh(self) -> None:
        with self.sessions() as session:
            current = registry.versions(session)
            changed = [name for name, version in current.items() if name not in self.models or self.models[name].version != version]
            fresh = {name: registry.get(session, name) for name in changed}
        self.models = {name: fresh.get(name) or self.models[name] for name in current}
        self.checked_at = self.clock()


class ModelRouter:
    def __init__(self, sessions: sessionmaker[Session], backend_dir: str, poll_interval: float, metrics_registry: CollectorRegistry) -> None:
        self.models = RegisteredModels(sessions, poll_interval)
        self.backends = Backends(backend_dir or default_directory())
        self.metrics = ModelMetrics(metrics_registry)
        self.positions: dict[tuple[str, int], dict[str, int]] = {}

    def misfit(self, loop_models: list[str], action_ids: Sequence[str]) -> tuple[str, str] | None:
        """The field and the problem of the first action that is not one of a model loop's models."""
        for index, action_id in enumerate(action_ids):
            if action_id not in loop_models:
                return (
                    f"actions[{index}].id",
                    f"'{action_id}' is not one of this loop's models ({', '.join(loop_models)}); "
                    "in a model loop every action is a model listed in the loop's 'models' setting",
                )
        return None

    def answer(self, name: str, context: list[Any]) -> Answer:
        started = time.monotonic()
        chosen = self.models.get(name)
        if chosen is None:
            self.metrics.fallbacks.labels(name, UNREGISTERED).inc()
            return Answer(None, None, None, 0.0, UNREGISTERED)
        deadline = started + chosen.spec.deadline
        reply, outcome = self._ask(chosen, context, deadline)
        if reply is not None:
            return Answer(reply["y"], name, reply["v"], time.monotonic() - started, None)
        fallback = self.models.get(chosen.spec.fallback) if chosen.spec.fallback and outcome != DEADLINE else None
        self.metrics.fallbacks.labels(name, outcome).inc()
        if fallback is not None:
            reply, _ = self._ask(fallback, context, deadline)
            if reply is not None:
                return Answer(reply["y"], fallback.name, reply["v"], time.monotonic() - started, outcome)
        return Answer(chosen.spec.default, None, None, time.monotonic() - started, outcome)

    def _ask(self, model: Registered, context: list[Any], deadline: float) -> tuple[dict[str, Any] | None, str]:
        """The backend's reply and ``answered``, or None and why not."""
        sent = time.monotonic()
        message = {"x": self._input(model, context)}
        reply = self._send(model, message, deadline)
        if reply is not None and reply.get("e") == LOST:
            # The replica went away with the request (a crash, or a replica replaced by a new version):
            # once more, on another replica or on whatever now listens at its path.
            reply = self._send(model, message, deadline)
        if reply is not None and reply.get("e") in (LOST, UNAVAILABLE):
            outcome = UNAVAILABLE
        elif reply is None:
            outcome = DEADLINE
        elif reply.get("e") == REJECTED:
            self.metrics.rejections.labels(model.name).inc()
            outcome = REJECTED
        elif "e" in reply:
            outcome = ERROR
        else:
            outcome = ANSWERED
            self.metrics.latency.labels(model.name).observe(time.monotonic() - sent)
            self.metrics.queue.labels(model.name).observe(reply["q"])
            self.metrics.compute.labels(model.name).observe(reply["c"])
            self.metrics.batch_size.labels(model.name).observe(reply["n"])
        self.metrics.requests.labels(model.name, outcome).inc()
        return (reply if outcome == ANSWERED else None), outcome

    def _send(self, model: Registered, message: dict[str, Any], deadline: float) -> dict[str, Any] | None:
        """The reply, ``{"e": "unavailable"}`` when no replica is reachable, or None at the deadline."""
        budget = deadline - time.monotonic()
        call = self.backends.call(model.name, model.spec.replicas, message | {"b": budget}, budget)
        return call.wait(budget) if call is not None else {"e": UNAVAILABLE}

    def _input(self, model: Registered, context: list[Any]) -> Any:
        """The context as the model takes it: a numeric row in the order of ``inputs``, or the JSON itself."""
        names = model.spec.inputs
        if names is None:
            return context
        key = (model.name, model.version)
        positions = self.positions.get(key)
        if positions is None:
            positions = self.positions[key] = {feature: index for index, feature in enumerate(names)}
        row = [0.0] * len(names)
        for feature, value in flatten(context, "contextFeatures"):
            index = positions.get(feature)
            if index is not None:
                row[index] += value
        return row
