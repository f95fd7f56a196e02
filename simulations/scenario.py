"""Scenario files: a population, how rewards arrive, and the policies to run through it.

A scenario is a small JSON (or TOML) document, so trying a policy on a simulated
population needs no code. Times are in seconds of simulated time: decisions
arrive at ``rate`` per second, so ``loop.rewardWaitTime`` and
``loop.updateInterval`` mean what they mean for a real loop.

    {
      "name": "linear-contextual",
      "environment": {"kind": "linear", "n_actions": 5},
      "drift": {"every": 0},
      "delivery": {"delay": 0.5, "missing": 0.05},
      "rounds": 4000, "rate": 50, "seeds": [0, 1],
      "loop": {"rewardWaitTime": 2, "updateInterval": 1, "featureDimension": 64},
      "policies": {"linucb": {"policy": "linucb"}, "uniform": {"policy": "uniform"}}
    }

Each policy entry is loop configuration on top of ``loop``, validated exactly as
the API validates it.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from decide.config import ConfigError, LoopConfig
from simulations.environments import (
    ENVIRONMENTS,
    Delivery,
    Environment,
    make_environment,
)

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
KEYS = {"name", "description", "environment", "drift", "delivery", "rounds", "rate", "seeds", "loop", "policies"}


class ScenarioError(ValueError):
    """A scenario file a person must fix; the message names the key."""


@dataclass(frozen=True)
class PolicySpec:
    label: str
    config: LoopConfig


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    environment: str
    environment_params: dict[str, Any]
    drift_every: int
    delivery: Delivery
    rounds: int
    rate: float
    seeds: tuple[int, ...]
    policies: tuple[PolicySpec, ...]

    def environment_for(self, seed: int) -> Environment:
        return make_environment(self.environment, self.environment_params, seed, self.drift_every)

    def select(self, labels: list[str] | None = None, rounds: int | None = None, seeds: list[int] | None = None) -> Scenario:
        """The same scenario restricted to ``labels``, with other rounds or seeds."""
        policies = self.policies
        if labels:
            known = {spec.label for spec in self.policies}
            unknown = [label for label in labels if label not in known]
            if unknown:
                raise ScenarioError(f"scenario {self.name!r} has no policy {', '.join(unknown)}; it has {', '.join(sorted(known))}")
            policies = tuple(spec for spec in self.policies if spec.label in labels)
        return Scenario(
            self.name, self.description, self.environment, self.environment_params, self.drift_every, self.delivery,
            _positive_int("rounds", rounds) if rounds is not None else self.rounds, self.rate,
            tuple(seeds) if seeds else self.seeds, policies,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "environment": {"kind": self.environment, **self.environment_params},
            "drift": {"every": self.drift_every},
            "delivery": {"delay": self.delivery.delay, "missing": self.delivery.missing},
            "rounds": self.rounds,
            "rate": self.rate,
            "seeds": list(self.seeds),
            "policies": {spec.label: spec.config.to_json() for spec in self.policies},
        }


def builtin_names() -> list[str]:
    return sorted(path.stem for path in SCENARIOS.glob("*.json"))


def load_scenario(reference: str | Path) -> Scenario:
    """A scenario from a file path, or by the name of one shipped in ``simulations/scenarios``."""
    path = Path(reference)
    if not path.exists() and (SCENARIOS / f"{reference}.json").exists():
        path = SCENARIOS / f"{reference}.json"
    if not path.exists():
        raise ScenarioError(f"no scenario file {str(reference)!r}; built-in scenarios: {', '.join(builtin_names())}")
    text = path.read_text()
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        raise ScenarioError(f"{path}: not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: {error}") from error
    return parse_scenario(data, default_name=path.stem)


def parse_scenario(data: Any, default_name: str = "scenario") -> Scenario:
    """Validate a scenario document; every error names the key to fix."""
    if not isinstance(data, dict):
        raise ScenarioError("a scenario must be an object")
    unknown = sorted(set(data) - KEYS)
    if unknown:
        raise ScenarioError(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(KEYS))}")
    environment = dict(_object(data, "environment"))
    kind = environment.pop("kind", None)
    if kind not in ENVIRONMENTS:
        raise ScenarioError(f"environment.kind must be one of {', '.join(ENVIRONMENTS)}, got {kind!r}")
    drift = _object(data, "drift", required=False)
    drift_every = _positive_int("drift.every", drift.get("every", 0), allow_zero=True)
    try:
        make_environment(kind, environment, 0, drift_every)
        delivery = Delivery(**_object(data, "delivery", required=False))
    except (TypeError, ValueError) as error:
        raise ScenarioError(f"environment or delivery: {error}") from error
    rate = data.get("rate", 100.0)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0:
        raise ScenarioError(f"rate must be a positive number of decisions per second, got {rate!r}")
    seeds = data.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ScenarioError(f"seeds must be a non-empty list of integers, got {seeds!r}")
    base = _object(data, "loop", required=False)
    policies = _object(data, "policies")
    if not policies:
        raise ScenarioError("policies must name at least one policy")
    specs = []
    for label, overrides in policies.items():
        if not isinstance(overrides, dict):
            raise ScenarioError(f"policies.{label} must be an object of loop settings, e.g. {{\"policy\": \"linucb\"}}")
        try:
            specs.append(PolicySpec(label, LoopConfig.from_json({**base, **overrides})))
        except ConfigError as error:
            raise ScenarioError(f"policies.{label}.{error.field}: {error}") from error
    return Scenario(
        name=str(data.get("name", default_name)),
        description=str(data.get("description", "")),
        environment=kind,
        environment_params=environment,
        drift_every=drift_every,
        delivery=delivery,
        rounds=_positive_int("rounds", data.get("rounds", 1000)),
        rate=float(rate),
        seeds=tuple(seeds),
        policies=tuple(specs),
    )


def _object(data: dict[str, Any], key: str, required: bool = True) -> dict[str, Any]:
    value = data.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise ScenarioError(f"{key} must be an object, got {value!r}")
    return value


def _positive_int(key: str, value: Any, allow_zero: bool = False) -> int:
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ScenarioError(f"{key} must be an integer >= {low}, got {value!r}")
    return value
