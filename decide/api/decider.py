"""Rank, reward and activate: validate, decide from the served snapshot, log the event, answer.

An answer is given only after its event is in the event log, so an acknowledged
decision or reward is never lost; if the log refuses, the caller gets 503 and
may retry with the same eventId (the decision is reproducible).
"""

from __future__ import annotations

import hashlib
import threading
import time
from bisect import bisect_right
from itertools import accumulate
from typing import Any

import numpy as np
from sqlalchemy import Engine

from decide.api.bodies import RankRequest
from decide.api.metrics import UNNAMED_LOOP, Metrics
from decide.api.policy_cache import PolicyCache, ServedPolicy
from decide.api.problems import Problem, invalid
from decide.config import Settings
from decide.errors import NotFound
from decide.events.log import EventLog, LogUnavailable
from decide.events.schemas import (
    Activation,
    Decision,
    Event,
    Reward,
    encode,
    new_id,
    stream_of,
)
from decide.features import FeatureError
from decide.policies.params import NonFiniteInput
from decide.serving.router import ModelRouter
from decide.store import queries
from decide.store.db import sessions
from decide.store.reads import hot_reads

_PCG64_INCREMENT = 0xDA3E39CB94B95BDB_5851F42D4C957F2D | 1
"""One fixed stream for every decision: what differs between decisions is the starting state."""


def decision_rng(event_id: str, version: int, generator: np.random.Generator | None = None) -> np.random.Generator:
    """The same event id against the same policy version always draws the same numbers.

    ``generator`` (a PCG64 one) is set to the state the pair determines and returned,
    so that a thread reuses one generator: building a generator from a seed costs
    more than a Thompson sampling decision's normals.
    """
    generator = generator or np.random.Generator(np.random.PCG64())
    digest = hashlib.blake2b(f"{event_id}\x00{version}".encode(), digest_size=16).digest()
    generator.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": int.from_bytes(digest, "little"), "inc": _PCG64_INCREMENT},
        "has_uint32": 0,
        "uinteger": 0,
    }
    return generator


def ranking(ids: tuple[str, ...], probabilities: list[float], chosen: int) -> list[dict[str, Any]]:
    """Chosen action first, then the rest by decreasing probability (request order breaks ties)."""
    order = sorted(range(len(ids)), key=lambda i: (i != chosen, -probabilities[i], i))
    return [{"id": ids[i], "probability": probabilities[i]} for i in order]


def choose(probabilities: list[float], rng: np.random.Generator) -> int:
    """Index drawn with ``probabilities``: the very draw of ``rng.choice(len(p), p=p)``, without its checks.

    The vector comes from a policy, which guarantees a distribution; the checks
    cost more than the draw, and on a few numbers plain Python beats numpy's calls
    (the same sums and divisions, so the same index).
    """
    cdf = list(accumulate(probabilities))
    total = cdf[-1]
    return bisect_right([value / total for value in cdf], rng.random())


class Decider:
    def __init__(
        self, engine: Engine, event_log: EventLog, settings: Settings, metrics: Metrics
    ) -> None:
        self.engine = engine
        self.log = event_log
        self.settings = settings
        self.metrics = metrics
        self.reads = hot_reads(engine)
        self.policies = PolicyCache(sessions(engine), settings.poll_interval, read_versions=self.reads.versions)
        self.models = ModelRouter(sessions(engine), settings.backend_dir, settings.poll_interval, metrics.registry)
        self._generators = threading.local()

    def rank(self, request: RankRequest) -> dict[str, Any]:
        """The answer, a ``RankResponse`` as a plain dict: pydantic would cost more than the rest of the answer."""
        self._check_actions(request)
        loop = request.loop or self.settings.default_loop
        served = self._served(loop, "loop")
        event_id = request.eventId or new_id()
        try:
            actions = served.space.action_set(request.contextFeatures or [], request.actions, tuple(request.excludedActions or ()))
        except FeatureError as error:
            raise invalid(error.path, str(error)) from error
        if served.config.models and (misfit := self.models.misfit(served.config.models, actions.ids)):
            raise invalid(*misfit)
        rng = decision_rng(event_id, served.version, self._generator())
        try:
            distribution = served.policy.probabilities(served.snapshot, actions, rng)
        except NonFiniteInput as error:  # the policy checks the vectors it uses
            raise invalid(
                "contextFeatures",
                "feature values are so large that they overflow when combined with each other; scale them down",
            ) from error
        probabilities = distribution.tolist()
        chosen = choose(probabilities, rng)
        answer = self.models.answer(actions.ids[chosen], _as_list(request.contextFeatures)) if served.config.models else None
        decision = Decision(
            event_id=event_id,
            loop=loop,
            timestamp=time.time(),
            policy_version=served.version,
            context=_as_list(request.contextFeatures),
            actions=[{"id": action["id"], "features": _as_list(action.get("features"))} for action in request.actions],
            excluded=list(request.excludedActions or ()),
            chosen=actions.ids[chosen],
            probabilities=probabilities,
            deferred=bool(request.deferActivation),
            **(answer.logged() if answer else {}),
        )
        self._append(decision)
        self.metrics.child(self.metrics.decisions, loop).inc()
        self.metrics.served(loop, served.version)
        return {
            "eventId": event_id,
            "rewardActionId": decision.chosen,
            "ranking": ranking(actions.ids, probabilities, chosen),
            "policyVersion": served.version,
            "loop": loop,
            **(answer.response() if answer else {}),
        }

    def reward(self, event_id: str, value: float, loop: str | None) -> bool:
        """Log a reward; False when its join already closed (it is then not used, and not logged)."""
        if loop is not None:
            self._served(loop, "loop")
        if self.reads.closed(event_id):
            self.metrics.late_rewards.inc()
            return False
        self._append(Reward(event_id=event_id, value=value, timestamp=time.time(), loop=loop))
        self.metrics.child(self.metrics.rewards, loop or UNNAMED_LOOP).inc()
        return True

    def activate(self, event_id: str, loop: str | None) -> bool:
        if loop is not None:
            self._served(loop, "loop")
        if self.reads.closed(event_id):
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
        seen = {action["id"] for action in request.actions}
        excluded = request.excludedActions or []
        for index, action_id in enumerate(excluded):
            if action_id not in seen:
                raise invalid(f"excludedActions[{index}]", f"'{action_id}' is not the id of any action in this request")
        if seen <= set(excluded):
            raise invalid("excludedActions", "every action is excluded; leave at least one action eligible")

    def _served(self, loop: str, field: str) -> ServedPolicy:
        try:
            return self.policies.get(loop)
        except queries.LoopNotFound as error:  # the request's field names it, and the answer says how to make it
            raise NotFound(error.detail, field=field, fix=f"create it with POST /loops or `decide loops create {loop}`") from error

    def _generator(self) -> np.random.Generator:
        """This thread's decision generator, reset by ``decision_rng`` for every decision."""
        generator = getattr(self._generators, "generator", None)
        if generator is None:
            generator = self._generators.generator = np.random.Generator(np.random.PCG64())
        return generator

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
