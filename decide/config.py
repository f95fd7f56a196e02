"""Configuration: one loop's learning settings, and the service's deployment settings.

Loop configuration travels with every policy version (so a rollback restores the
settings that produced it); it is validated here, once, for the API, the CLI and
the worker alike, and it builds the loop's feature space and policy for all of
them. Features and policies are imported where they are built, so that reading
settings does not load numpy and scipy.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Literal, get_args

from decide.errors import Invalid
from decide.limits import (
    MAX_FEATURE_DIMENSION,
    MAX_KEEP_VERSIONS,
    MAX_UPDATE_INTERVAL,
    MAX_WAIT_SECONDS,
    MIN_FEATURE_DIMENSION,
    MIN_UPDATE_INTERVAL,
)

if TYPE_CHECKING:
    from decide.features import FeatureSpace
    from decide.policies import Policy

RewardAggregation = Literal["earliest", "sum"]
EventLogKind = Literal["embedded", "kafka"]


class ConfigError(Invalid):
    """A configuration value a person must fix; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)


@dataclass(frozen=True)
class LoopConfig:
    """How one decision loop explores, joins rewards and learns (JSON names in camelCase)."""

    policy: str = "linear_thompson"
    policyParams: dict[str, Any] = field(default_factory=dict)
    explorationFloor: float = 0.05
    rewardWaitTime: float = 600.0
    defaultReward: float = 0.0
    rewardAggregation: RewardAggregation = "earliest"
    activationTimeout: float = 3600.0
    featureDimension: int = 256
    interactions: bool = True
    updateInterval: float = 1.0
    discount: float = 1.0
    keepVersions: int = 500
    models: list[str] = field(default_factory=list)
    """Registered models this loop chooses among (its actions); empty for a loop of plain actions."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any], base: LoopConfig | None = None) -> LoopConfig:
        """Validate ``data`` (all fields optional) on top of ``base`` or the defaults."""
        known = {f.name for f in fields(cls)}
        for name in data:
            if name not in known:
                raise ConfigError(name, f"unknown setting '{name}'; known settings: {', '.join(sorted(known))}")
        config = replace(base or cls(), **data)
        config.validate()
        return config

    def validate(self) -> None:
        from decide.policies import POLICIES

        _number(self, "explorationFloor", 0.0, 1.0, upper_open=True)
        _number(self, "rewardWaitTime", 0.0, MAX_WAIT_SECONDS)
        _number(self, "defaultReward", -math.inf, math.inf)
        _number(self, "activationTimeout", 0.0, MAX_WAIT_SECONDS)
        _number(self, "updateInterval", MIN_UPDATE_INTERVAL, MAX_UPDATE_INTERVAL)
        _number(self, "discount", 0.0, 1.0, lower_open=True)
        _integer(self, "featureDimension", MIN_FEATURE_DIMENSION, MAX_FEATURE_DIMENSION)
        _integer(self, "keepVersions", 1, MAX_KEEP_VERSIONS)
        if self.rewardAggregation not in get_args(RewardAggregation):
            raise ConfigError("rewardAggregation", "rewardAggregation must be 'earliest' or 'sum'")
        if not isinstance(self.interactions, bool):
            raise ConfigError("interactions", "interactions must be true or false")
        if not isinstance(self.models, list) or not all(isinstance(name, str) and name for name in self.models) or len(set(self.models)) < len(self.models):
            raise ConfigError("models", "models must be a list of distinct model names, e.g. [\"small\", \"large\"]")
        if not isinstance(self.policyParams, dict):
            raise ConfigError("policyParams", "policyParams must be an object of parameter names to values")
        if not isinstance(self.policy, str) or self.policy not in POLICIES:
            raise ConfigError("policy", f"policy must be one of: {', '.join(POLICIES)}; got {self.policy!r}")
        try:
            self.build_policy()
        except ValueError as error:
            raise ConfigError("policyParams", str(error)) from error

    def feature_space(self) -> FeatureSpace:
        """How this loop turns context and actions into vectors: the same for serving, learning and evaluating."""
        from decide.features import FeatureSpace

        return FeatureSpace(dimension=self.featureDimension, interactions=self.interactions)

    def build_policy(self) -> Policy:
        """This loop's policy (its ``policy`` names which), with its parameters and exploration floor.

        Raises ValueError naming the unknown policy or parameter and what is allowed.
        """
        from decide.policies import make_policy

        return make_policy(self.policy, self.featureDimension, self.policy_params())

    def policy_params(self) -> dict[str, Any]:
        """Policy parameters with the loop-wide exploration floor filled in where the policy has one.

        The exploration floor's one rule: a policy that takes a ``floor`` gets the loop's
        ``explorationFloor`` unless its parameters name their own.
        """
        from decide.policies import POLICIES

        params = dict(self.policyParams)
        policy_class = POLICIES.get(self.policy)
        if policy_class is not None and "floor" in _parameters(policy_class):
            params.setdefault("floor", self.explorationFloor)
        return params

    def learns_like(self, other: LoopConfig) -> bool:
        """Whether statistics learned under ``other`` remain meaningful under this config."""
        from decide.policies import POLICIES

        def family(config: LoopConfig) -> tuple[Any, ...]:
            policy_class = POLICIES[config.policy]
            uses_features = "dimension" in _parameters(policy_class)
            return (
                policy_class.statistics_family or config.policy,
                config.policyParams.get("per_action", False),
                config.featureDimension if uses_features else None,
                config.interactions if uses_features else None,
            )

        return family(self) == family(other)


def _parameters(policy_class: type) -> set[str]:
    import inspect

    return set(inspect.signature(policy_class.__init__).parameters) - {"self"}


def _number(config: LoopConfig, name: str, low: float, high: float, *, lower_open: bool = False, upper_open: bool = False) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(name, f"{name} must be a finite number")
    too_low = value <= low if lower_open else value < low
    too_high = value >= high if upper_open else value > high
    if too_low or too_high:
        left, right = ("(" if lower_open else "["), (")" if upper_open else "]")
        raise ConfigError(name, f"{name} must be in {left}{low:g}, {high:g}{right}; got {value:g}")


def _integer(config: LoopConfig, name: str, low: int, high: int) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(name, f"{name} must be a whole number from {low} to {high}; got {value!r}")


class SettingsError(ConfigError):
    """A deployment setting a person must fix; ``field`` names its ``DECIDE_*`` variable, not a request's field."""


@dataclass(frozen=True)
class Settings:
    """Deployment settings: every ``DECIDE_*`` variable is read here, and nowhere else.

    ``DECIDE_<FIELD>`` sets a field; the ``decide`` command's options take their
    defaults from these settings, and an option given on the command line wins.
    """

    database_url: str = "sqlite:///decide.db"
    event_log: EventLogKind = "embedded"
    partitions: int = 4
    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = "decide."
    default_loop: str = "default"
    max_actions: int = 50
    max_body_bytes: int = 256 * 1024
    poll_interval: float = 0.2
    backend_dir: str = ""
    """Where model backends listen (Unix sockets); empty: a private directory under the system's temp dir."""
    join_grace: float = 0.5
    join_spill_after: float = 10.0
    """Event-time seconds a join stays in a worker's memory before it is written to the database."""
    worker_batch: int = 5000
    log_retention: float = 7 * 86400.0
    """Seconds after its append that the embedded event log keeps a record, once consumed; -1 keeps every record."""
    worker_interval: float = 0.25
    """Shortest time between a worker's cycles while it is caught up: fewer, larger transactions."""
    api_keys: tuple[str, ...] = ()
    """Keys the API accepts; empty: it needs none."""
    spool_path: str = "decide-spool.db"
    """Where API processes keep events, durably, while Kafka is unreachable (shared by the processes of a host)."""
    host: str = "127.0.0.1"
    """Where ``decide serve`` listens."""
    port: int = 8080
    workers: int = 2
    """gunicorn worker processes of ``decide serve``."""
    threads: int = 4
    """Threads per gunicorn worker process."""
    access_log: bool = False
    """Whether ``decide serve`` writes gunicorn's access log to standard output."""
    worker_metrics_port: int = 0
    """Where ``decide worker`` serves its Prometheus metrics on 127.0.0.1; 0: it serves none."""
    url: str = "http://127.0.0.1:8080"
    """The running service that client commands (``decide demo``) talk to."""
    api_key: str = ""
    """The key client commands (``decide simulate --url``) send; one of the service's ``api_keys``."""

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``DECIDE_<FIELD>`` variables; explicit overrides win."""
        environ = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        for f in fields(cls):
            variable = f"DECIDE_{f.name.upper()}"
            raw = environ.get(variable)
            if raw is None:
                continue
            default = getattr(cls(), f.name)
            try:
                if isinstance(default, tuple):
                    values[f.name] = tuple(key.strip() for key in raw.split(",") if key.strip())
                elif isinstance(default, bool):
                    values[f.name] = raw.strip().lower() not in FALSE_WORDS
                elif isinstance(default, int):
                    values[f.name] = int(raw)
                elif isinstance(default, float):
                    values[f.name] = float(raw)
                else:
                    values[f.name] = raw
            except ValueError as error:
                kind = "a whole number" if isinstance(default, int) else "a number"
                raise SettingsError(variable, f"{variable} must be {kind}; got {raw!r}") from error
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)

    def __post_init__(self) -> None:
        limits = {"partitions": 1, "max_actions": 1, "max_body_bytes": 1024, "worker_batch": 1, "workers": 1, "threads": 1}
        for name, low in limits.items():
            if getattr(self, name) < low:
                raise SettingsError(f"DECIDE_{name.upper()}", f"DECIDE_{name.upper()} must be at least {low}; got {getattr(self, name)}")
        for name in ("port", "worker_metrics_port"):
            if not 0 <= getattr(self, name) <= 65535:
                raise SettingsError(f"DECIDE_{name.upper()}", f"DECIDE_{name.upper()} must be a port number from 0 to 65535")
        for name in ("poll_interval", "join_grace", "worker_interval"):
            if not 0 <= getattr(self, name) <= 60:
                raise SettingsError(f"DECIDE_{name.upper()}", f"DECIDE_{name.upper()} must be from 0 to 60 seconds")
        if not 0 <= self.join_spill_after <= 3600:
            raise SettingsError("DECIDE_JOIN_SPILL_AFTER", "DECIDE_JOIN_SPILL_AFTER must be from 0 to 3600 seconds")
        if self.log_retention != -1 and not 0 <= self.log_retention <= 3650 * 86400:
            raise SettingsError("DECIDE_LOG_RETENTION", "DECIDE_LOG_RETENTION must be -1 (keep every record) or 0 to 315360000 seconds")
        if self.event_log not in get_args(EventLogKind):
            raise SettingsError("DECIDE_EVENT_LOG", f"DECIDE_EVENT_LOG must be 'embedded' or 'kafka'; got {self.event_log!r}")


FALSE_WORDS = ("", "0", "false", "no", "off")
"""Values of a yes-or-no ``DECIDE_*`` variable that mean no; any other value means yes."""
