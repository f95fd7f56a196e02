"""Policies that ignore the context: Beta–Bernoulli Thompson sampling and uniform random."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from decide.limits import MAX_SAMPLES
from decide.policies.base import ActionSet, Arrays, Batch, Policy
from decide.policies.distributions import (
    floor_mix,
    uniform_distribution,
    win_frequencies,
)
from decide.policies.params import check_int, check_real, checked_array


@dataclass(frozen=True)
class BetaThompson(Policy):
    """Thompson sampling with a Beta posterior per action id, for loops without useful context.

    Rewards are clipped to [0, 1] and counted fractionally (r successes, 1 − r
    failures), which is the Bernoulli update for binary rewards.
    """

    name: ClassVar[str] = "beta_thompson"

    prior_alpha: float = 1.0
    prior_beta: float = 1.0
    floor: float = 0.05
    samples: int = 1024

    def __post_init__(self) -> None:
        check_real("prior_alpha", self.prior_alpha, 0.0, low_open=True)
        check_real("prior_beta", self.prior_beta, 0.0, low_open=True)
        check_real("floor", self.floor, 0.0, 1.0, high_open=True)
        check_int("samples", self.samples, 1, MAX_SAMPLES)

    def statistics(self, batch: Batch) -> Arrays:
        """``successes/<id>`` and ``failures/<id>``: weighted sums of r and 1 − r per chosen action."""
        rewards = np.clip(checked_array(batch.rewards, (len(batch),), "rewards"), 0.0, 1.0)
        weights = checked_array(batch.weight_vector(), (len(batch),), "weights")
        ids, inverse = np.unique(np.asarray(batch.action_ids, dtype=str), return_inverse=True)
        successes = np.bincount(inverse, weights=weights * rewards, minlength=len(ids))
        failures = np.bincount(inverse, weights=weights * (1.0 - rewards), minlength=len(ids))
        return {
            **{f"successes/{i}": np.array([s]) for i, s in zip(ids, successes, strict=True)},
            **{f"failures/{i}": np.array([f]) for i, f in zip(ids, failures, strict=True)},
        }

    def snapshot(self, statistics: Arrays) -> Arrays:
        """``alpha/<id>`` and ``beta/<id>``: the posterior parameters, prior included."""
        ids = sorted({key.partition("/")[2] for key in statistics})
        none = np.zeros(1)
        alpha = {
            f"alpha/{i}": self.prior_alpha + statistics.get(f"successes/{i}", none) for i in ids
        }
        beta = {f"beta/{i}": self.prior_beta + statistics.get(f"failures/{i}", none) for i in ids}
        return alpha | beta

    def probabilities(
        self, snapshot: Arrays, actions: ActionSet, rng: np.random.Generator
    ) -> np.ndarray:
        """Win frequencies of vectorized Beta draws (prior for unseen actions), then the floor."""
        alpha = _per_action(snapshot, "alpha", actions.ids, self.prior_alpha)
        beta = _per_action(snapshot, "beta", actions.ids, self.prior_beta)
        draws = rng.beta(alpha[:, None], beta[:, None], size=(len(actions.ids), self.samples))
        return floor_mix(win_frequencies(draws.T, actions.eligible), actions.eligible, self.floor)


def _per_action(snapshot: Arrays, name: str, ids: tuple[str, ...], prior: float) -> np.ndarray:
    """The ``name/<id>`` scalar of each action, ``prior`` for actions never learned about."""
    default = np.array([prior])
    return np.array([snapshot.get(f"{name}/{i}", default)[0] for i in ids], dtype=np.float64)


@dataclass(frozen=True)
class UniformRandom(Policy):
    """Baseline and safe logging policy: every eligible action equally likely, nothing learned."""

    name: ClassVar[str] = "uniform"

    def statistics(self, batch: Batch) -> Arrays:
        return {}

    def snapshot(self, statistics: Arrays) -> Arrays:
        return {}

    def probabilities(
        self, snapshot: Arrays, actions: ActionSet, rng: np.random.Generator
    ) -> np.ndarray:
        return uniform_distribution(actions.eligible)
