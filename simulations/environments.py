"""Synthetic populations whose best action per context is known, so learning can be checked.

Each round draws a context; each action's expected reward is a function of the
context and the action; the reward drawn is Bernoulli (minus a cost, for model
routing). Features come out in Personalizer's JSON shape, so the same
environment drives decide in process or over HTTP. ``shift`` re-draws what makes
an action good, which ``Drifting`` uses to make a population non-stationary;
``Delivery`` decides when (and whether) each reward reaches decide.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class Round:
    context: list[dict[str, Any]]
    actions: list[dict[str, Any]]
    expected: dict[str, float]

    @property
    def best(self) -> str:
        return max(self.expected, key=self.expected.__getitem__)


class Environment(Protocol):
    """What the simulation runners need from a population."""

    def next_round(self) -> Round: ...

    def reward(self, played: Round, action_id: str) -> float: ...

    def shift(self) -> None: ...


@dataclass
class LinearPayoff:
    """Click probability linear in (segment, action) plus numeric context × action weights.

    ``segments`` are categorical user kinds; each action is best for some segment,
    so a context-free policy cannot do well and a contextual one can.
    """

    n_actions: int = 5
    n_segments: int = 4
    n_numeric: int = 4
    base_rate: float = 0.1
    lift: float = 0.6
    seed: int = 0
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        _check_count("n_actions", self.n_actions, 2)
        _check_count("n_segments", self.n_segments, 1)
        _check_count("n_numeric", self.n_numeric, 0)
        self.rng = np.random.default_rng(self.seed)
        self.shift()

    def shift(self) -> None:
        """Draw which action each segment favours and the numeric weights anew."""
        self.favourite = self.rng.integers(0, self.n_actions, size=self.n_segments)
        self.weights = self.rng.normal(0.0, 0.05, size=(self.n_actions, self.n_numeric))

    def action_ids(self) -> list[str]:
        return [f"article-{i}" for i in range(self.n_actions)]

    def next_round(self) -> Round:
        segment = int(self.rng.integers(self.n_segments))
        numeric = self.rng.normal(size=self.n_numeric)
        context: list[dict[str, Any]] = [
            {"user": {"segment": f"s{segment}", **{f"x{j}": round(float(v), 4) for j, v in enumerate(numeric)}}},
            {"device": {"mobile": bool(self.rng.random() < 0.5)}},
        ]
        ids = self.action_ids()
        actions = [{"id": action_id, "features": [{"topic": f"t{i % 3}"}]} for i, action_id in enumerate(ids)]
        p = self.base_rate + self.lift * (self.favourite[segment] == np.arange(self.n_actions)) + self.weights @ numeric
        expected = dict(zip(ids, np.clip(p, 0.0, 1.0).tolist()))
        return Round(context, actions, expected)

    def reward(self, played: Round, action_id: str) -> float:
        return float(self.rng.random() < played.expected[action_id])


@dataclass
class LogisticPayoff:
    """Click probability σ(bias + wₐ·x): a smooth, non-linear payoff over numeric context.

    Linear policies can only approximate it, which is the usual situation with
    real traffic. ``scale`` sets how much the context matters (the spread of the logits).
    """

    n_actions: int = 5
    n_numeric: int = 6
    scale: float = 1.5
    bias: float = -1.5
    seed: int = 0
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        _check_count("n_actions", self.n_actions, 2)
        _check_count("n_numeric", self.n_numeric, 1)
        if not (math.isfinite(self.scale) and self.scale >= 0):
            raise ValueError(f"scale must be a finite number >= 0, got {self.scale!r}")
        self.rng = np.random.default_rng(self.seed)
        self.shift()

    def shift(self) -> None:
        """Draw every action's weights anew."""
        self.weights = self.rng.normal(0.0, self.scale / math.sqrt(self.n_numeric), size=(self.n_actions, self.n_numeric))

    def action_ids(self) -> list[str]:
        return [f"offer-{i}" for i in range(self.n_actions)]

    def next_round(self) -> Round:
        numeric = self.rng.normal(size=self.n_numeric)
        context = [{"user": {f"x{j}": round(float(v), 4) for j, v in enumerate(numeric)}}]
        actions = [{"id": action_id, "features": [{"kind": f"k{i % 2}"}]} for i, action_id in enumerate(self.action_ids())]
        logits = self.bias + self.weights @ numeric
        expected = {action_id: float(1.0 / (1.0 + math.exp(-logit))) for action_id, logit in zip(self.action_ids(), logits)}
        return Round(context, actions, expected)

    def reward(self, played: Round, action_id: str) -> float:
        return float(self.rng.random() < played.expected[action_id])


DEFAULT_SEGMENTS = {"chat": 0.5, "code": 0.3, "math": 0.2}
DEFAULT_ACCURACY = {
    "small": {"chat": 0.80, "code": 0.45, "math": 0.30},
    "medium": {"chat": 0.82, "code": 0.70, "math": 0.55},
    "large": {"chat": 0.85, "code": 0.78, "math": 0.80},
}
DEFAULT_COST = {"small": 0.0, "medium": 0.05, "large": 0.15}


@dataclass
class ModelRouting:
    """Requests from segments, routed to one of several models, each with a per-segment accuracy.

    The reward is 1 for a correct answer minus the model's cost, so the best model
    depends on the segment: a cheap model where it is good enough, a large one
    where it is not. Models are actions whose features describe them (size,
    family), the way registered model backends are offered to decide.
    """

    segments: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SEGMENTS))
    accuracy: dict[str, dict[str, float]] = field(default_factory=lambda: {m: dict(a) for m, a in DEFAULT_ACCURACY.items()})
    cost: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_COST))
    seed: int = 0
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        if not self.segments or any(not (math.isfinite(w) and w > 0) for w in self.segments.values()):
            raise ValueError("segments must map each segment name to a positive share of traffic")
        if len(self.accuracy) < 2:
            raise ValueError("accuracy must list at least two models")
        for model, table in self.accuracy.items():
            missing = set(self.segments) - set(table)
            if missing:
                raise ValueError(f"accuracy of model {model!r} lacks segment(s) {', '.join(sorted(missing))}")
            if any(not 0.0 <= value <= 1.0 for value in table.values()):
                raise ValueError(f"accuracy of model {model!r} must be between 0 and 1")
        unknown = set(self.cost) - set(self.accuracy)
        if unknown:
            raise ValueError(f"cost names unknown model(s) {', '.join(sorted(unknown))}")
        self.rng = np.random.default_rng(self.seed)
        self.names = list(self.segments)
        shares = np.array([self.segments[name] for name in self.names])
        self.shares = shares / shares.sum()

    @property
    def models(self) -> list[str]:
        return list(self.accuracy)

    def shift(self) -> None:
        """Shuffle which model is how accurate within every segment (a new model release, say)."""
        for segment in self.names:
            values = self.rng.permutation([self.accuracy[model][segment] for model in self.models])
            for model, value in zip(self.models, values):
                self.accuracy[model][segment] = float(value)

    def next_round(self) -> Round:
        segment = self.names[int(self.rng.choice(len(self.names), p=self.shares))]
        context = [{"request": {"segment": segment, "length": round(float(self.rng.lognormal(5.0, 0.5)), 1)}}]
        actions = [{"id": model, "features": [{"model": {"cost": self.cost.get(model, 0.0)}}]} for model in self.models]
        expected = {model: self.accuracy[model][segment] - self.cost.get(model, 0.0) for model in self.models}
        return Round(context, actions, expected)

    def reward(self, played: Round, action_id: str) -> float:
        cost = self.cost.get(action_id, 0.0)
        correct = self.rng.random() < played.expected[action_id] + cost
        return float(correct) - cost


@dataclass
class Drifting:
    """Non-stationary wrapper: the population shifts every ``every`` rounds."""

    inner: Environment
    every: int
    rounds: int = 0

    def __post_init__(self) -> None:
        _check_count("every", self.every, 1)

    def next_round(self) -> Round:
        if self.rounds and self.rounds % self.every == 0:
            self.inner.shift()
        self.rounds += 1
        return self.inner.next_round()

    def reward(self, played: Round, action_id: str) -> float:
        return self.inner.reward(played, action_id)

    def shift(self) -> None:
        self.inner.shift()


@dataclass(frozen=True)
class Delivery:
    """When rewards reach decide: exponential delays with mean ``delay`` seconds, a share ``missing`` never."""

    delay: float = 0.0
    missing: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.delay) and self.delay >= 0):
            raise ValueError(f"delay must be a number of seconds >= 0, got {self.delay!r}")
        if not 0.0 <= self.missing <= 1.0:
            raise ValueError(f"missing must be a share between 0 and 1, got {self.missing!r}")

    def on_time(self, wait: float) -> float:
        """Probability that a reward arrives within ``wait`` seconds (and so is not replaced by the default)."""
        arrives = 1.0 - self.missing
        return arrives * (1.0 - math.exp(-wait / self.delay)) if self.delay else arrives

    def sample(self, rng: np.random.Generator) -> float | None:
        """Seconds until the reward arrives, or None when it never does."""
        if self.missing and rng.random() < self.missing:
            return None
        return float(rng.exponential(self.delay)) if self.delay else 0.0


ENVIRONMENTS: dict[str, type] = {"linear": LinearPayoff, "logistic": LogisticPayoff, "model_routing": ModelRouting}


def make_environment(kind: str, params: Mapping[str, Any], seed: int, drift_every: int = 0) -> Environment:
    """The environment ``kind`` with ``params``; raises ValueError naming what is allowed."""
    cls = ENVIRONMENTS.get(kind)
    if cls is None:
        raise ValueError(f"unknown environment {kind!r}; allowed: {', '.join(ENVIRONMENTS)}")
    allowed = [name for name in inspect.signature(cls).parameters if name != "seed"]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"environment {kind!r} has no parameter {', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}")
    environment = cls(**params, seed=seed)
    return Drifting(environment, drift_every) if drift_every else environment


def _check_count(name: str, value: object, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
