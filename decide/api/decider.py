"""Rank, reward and activate: validate, decide from the served snapshot, log the event, answer.

An answer is given only after its event is in the event log, so an acknowledged
decision or reward is never lost; if the log refuses, the caller gets 503 and
may retry with the same eventId (the decision is reproducible).
"""

from __future__ import annotations

import hashlib
import time
import uuid

import numpy as np
from sqlalchemy import Engine, bindparam, select

from decide.api.metrics import Metrics
from decide.api.policy_cache import PolicyCache, ServedPolicy
from decide.api.problems import Problem, invalid, not_found
from decide.api.schemas import RankedAction, RankRequest, RankResponse
from decide.config import Settings
from decide.events.log import EventLog, LogUnavailable
from decide.events.schemas import Activation, Decision, Event, Reward, encode, stream_of
from decide.features import FeatureError
from decide.serving.router import ModelRouter
from decide.store import queries
from decide.store.db import sessions
from decide.store.models import Example


_CLOSED = select(Example.event_id).where(Example.event_id == bindparam("event_id"))


def decision_rng(event_id: str, version: int) -> np.random.Generator:
    """The same event id against the same policy version always draws the same numbers."""
    digest = hashlib.blake2b(f"{event_id}\x00{version}".encode(), digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


def ranking(ids: tuple[str, ...], probabilities: np.ndarray, chosen: int) -> list[RankedAction]:
    """Chosen action first, then the rest by decreasing probability (request order breaks ties)."""
    order = sorted(range(len(ids)), key=lambda i: (i != chosen, -probabilities[i], i))
    return [RankedAction(id=ids[i], probability=float(probabilities[i])) for i in order]


class Decider:
    def __init__(
        self, engine: Engine, event_log: EventLog, settings: Settings, metrics: Metrics
    ) -> None:
        self.engine = engine
        self.log = event_log
        self.settings = settings
        self.metrics = metrics
        self.policies = PolicyCache(sessions(engine), settings.poll_interval)
        self.models = ModelRouter(sessions(engine), settings.backend_dir, settings.poll_interval, metrics.registry)

    def rank(self, request: RankRequest) -> RankResponse:
        self._check_actions(request)
        loop = request.loop or self.settings.default_loop
        served = self._served(loop, "loop")
        event_id = request.eventId or uuid.uuid4().hex
        try:
            actions = served.space.action_set(
                request.contextFeatures or [],
                [{"id": action.id, "features": action.features} for action in request.actions],
                tuple(request.excludedActions or ()),
            )
        except FeatureError as error:
            raise invalid(error.path, str(error)) from error
        if not (np.isfinite(actions.features).all() and np.isfinite(actions.context).all()):
            raise invalid(
                "contextFeatures",
                "feature values are so large that they overflow when combined with each other; scale them down",
            )
        if served.config.models and (misfit := self.models.misfit(served.config.models, actions.ids)):
            raise invalid(*misfit)
        rng = decision_rng(event_id, served.version)
        probabilities = served.policy.probabilities(served.snapshot, actions, rng)
        chosen = int(rng.choice(len(probabilities), p=probabilities))
        answer = self.models.answer(actions.ids[chosen], _as_list(request.contextFeatures)) if served.config.models else None
        decision = Decision(
            event_id=event_id,
            loop=loop,
            timestamp=time.time(),
            policy_version=served.version,
            context=_as_list(request.contextFeatures),
            actions=[{"id": action.id, "features": _as_list(action.features)} for action in request.actions],
            excluded=list(request.excludedActions or ()),
            chosen=actions.ids[chosen],
            probabilities=probabilities.tolist(),
            deferred=bool(request.deferActivation),
            **(answer.logged() if answer else {}),
        )
        self._append(decision)
        self.metrics.decisions.labels(loop).inc()
        self.metrics.served_version.labels(loop).set(served.version)
        return RankResponse(
            eventId=event_id,
            rewardActionId=decision.chosen,
            ranking=ranking(actions.ids, probabilities, chosen),
            policyVersion=served.version,
            loop=loop,
            **(answer.response() if answer else {}),
        )

    def reward(self, event_id: str, value: float, loop: str | None) -> bool:
        """Log a reward; False when its join already closed (it is then not used, and not logged)."""
        if loop is not None:
            self._served(loop, "loop")
        if self._closed(event_id):
            self.metrics.late_rewards.inc()
            return False
        self._append(Reward(event_id=event_id, value=value, timestamp=time.time(), loop=loop))
        self.metrics.rewards.labels(loop or "").inc()
        return True

    def activate(self, event_id: str, loop: str | None) -> bool:
        if loop is not None:
            self._served(loop, "loop")
        if self._closed(event_id):
            return False
        self._append(Activation(event_id=event_id, timestamp=time.time(), loop=loop))
        return True

    def _check_actions(self, request: RankRequest) -> None:
        """Limits and exclusions; featurization itself rejects duplicate ids and bad feature values."""
        if len(request.actions) > self.settings.max_actions:
            raise invalid(
                "actions",
                f"{len(request.actions)} actions is more than the limit of {self.settings.max_actions}; "
                "send fewer candidates or raise DECIDE_MAX_ACTIONS",
            )
        seen = {action.id for action in request.actions}
        excluded = request.excludedActions or []
        for index, action_id in enumerate(excluded):
            if action_id not in seen:
                raise invalid(f"excludedActions[{index}]", f"'{action_id}' is not the id of any action in this request")
        if seen <= set(excluded):
            raise invalid("excludedActions", "every action is excluded; leave at least one action eligible")

    def _served(self, loop: str, field: str) -> ServedPolicy:
        try:
            return self.policies.get(loop)
        except queries.LoopNotFound as error:
            raise not_found(f"{error}; create it with POST /loops or `decide loops create {loop}`", field) from error

    def _closed(self, event_id: str) -> bool:
        with self.engine.connect() as connection:
            return connection.execute(_CLOSED, {"event_id": event_id}).first() is not None

    def _append(self, event: Event) -> None:
        try:
            self.log.append(stream_of(event), event.event_id, encode(event))
        except LogUnavailable as error:
            self.metrics.log_failures.inc()
            raise Problem(503, "Event log unavailable", f"{error}; nothing was recorded, retry the request") from error


def _as_list(features: list | dict | None) -> list:
    if features is None:
        return []
    return features if isinstance(features, list) else [features]
