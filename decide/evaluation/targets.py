"""The policies an evaluation asks about: what each would have played on every logged decision.

``Online`` is the policy that served the traffic (its logged probabilities),
``FirstAction`` is Personalizer's baseline (the application's own default: the
first eligible action), ``Uniform`` explores blindly, and ``Candidate`` is any
loop configuration, learning on the log in time order the way the loop would
have learned had it served (counterfactual learning from the logged actions).
"""

from __future__ import annotations

import itertools
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import fields

import numpy as np

from decide.config import LoopConfig
from decide.evaluation.logs import LoggedExample
from decide.events.schemas import Decision
from decide.features import FeatureSpace
from decide.learning import statistics_after
from decide.policies import Arrays
from decide.policies.base import ActionSet
from decide.policies.distributions import eligible_indices, uniform_distribution

LOOP_SETTINGS = {f.name for f in fields(LoopConfig)} - {"policy", "policyParams"}


class Target(ABC):
    """A policy to evaluate; ``space`` is the feature space its probabilities need (None: any)."""

    label: str
    description: str
    space: FeatureSpace | None = None

    @abstractmethod
    def probabilities(self, decision: Decision, actions: ActionSet) -> np.ndarray:
        """Probability of each of the decision's actions, in request order."""

    def learn(self, examples: Sequence[LoggedExample]) -> None:
        """Take in examples that happened before the next ``probabilities`` call."""


class Online(Target):
    label = "online"
    description = "the policy that served this traffic (logged probabilities)"

    def probabilities(self, decision: Decision, actions: ActionSet) -> np.ndarray:
        return np.asarray(decision.probabilities, dtype=float)


class FirstAction(Target):
    label = "baseline"
    description = "always the first eligible action, as the application would without decide"

    def probabilities(self, decision: Decision, actions: ActionSet) -> np.ndarray:
        p = np.zeros(len(actions.ids))
        p[eligible_indices(actions.eligible)[0]] = 1.0
        return p


class Uniform(Target):
    label = "uniform"
    description = "every eligible action equally likely"

    def probabilities(self, decision: Decision, actions: ActionSet) -> np.ndarray:
        return uniform_distribution(actions.eligible)


class Candidate(Target):
    """A loop configuration learning from the log in order, from ``statistics`` (empty: from scratch)."""

    def __init__(self, label: str, config: LoopConfig, seed: int = 0, statistics: Arrays | None = None) -> None:
        self.label = label
        self.config = config
        self.description = f"{config.policy} {json.dumps(config.policy_params(), sort_keys=True)}"
        self.space = config.feature_space()
        self.policy = config.build_policy()
        self.statistics: Arrays = dict(statistics or {})
        self.snapshot = self.policy.snapshot(self.statistics)
        self.rng = np.random.default_rng(seed)

    def probabilities(self, decision: Decision, actions: ActionSet) -> np.ndarray:
        return self.policy.probabilities(self.snapshot, actions, self.rng)

    def learn(self, examples: Sequence[LoggedExample]) -> None:
        if not examples:
            return
        decisions, rewards = [e.decision for e in examples], [e.reward for e in examples]
        self.statistics = statistics_after(self.config, self.policy, self.statistics, decisions, rewards)
        self.snapshot = self.policy.snapshot(self.statistics)


def parse_candidates(spec: str, base: LoopConfig) -> list[tuple[str, LoopConfig]]:
    """Labelled configurations from ``policy:key=value,key=value``; ``a|b|c`` values span a grid.

    Keys that are loop settings (``explorationFloor``, ``featureDimension``…)
    change the loop; the others are policy parameters. Values are JSON
    (``alpha=2``, ``per_action=true``); the base loop's parameters carry over
    when the policy is the same. Raises ValueError saying what to fix.
    """
    name, _, assignments = spec.partition(":")
    name = name.strip()
    if not name:
        raise ValueError(f"candidate {spec!r} names no policy; write e.g. linucb:alpha=2")
    choices: dict[str, list[object]] = {}
    for assignment in filter(None, (part.strip() for part in assignments.split(","))):
        key, equals, values = assignment.partition("=")
        if not equals or not key.strip():
            raise ValueError(f"candidate {spec!r}: {assignment!r} is not key=value")
        choices[key.strip()] = [_value(value) for value in values.split("|")]
    candidates = []
    for combination in itertools.product(*choices.values()):
        chosen = dict(zip(choices, combination))
        loop = {key: value for key, value in chosen.items() if key in LOOP_SETTINGS}
        params = {key: value for key, value in chosen.items() if key not in LOOP_SETTINGS}
        inherited = base.policyParams if name == base.policy else {}
        config = LoopConfig.from_json({"policy": name, "policyParams": {**inherited, **params}, **loop}, base=base)
        described = ",".join(f"{key}={json.dumps(value)}" for key, value in chosen.items())
        candidates.append((f"{name}:{described}" if described else name, config))
    return candidates


def _value(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text.strip()
