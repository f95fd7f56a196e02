"""The vocabulary every policy speaks: featurized candidates, statistics, snapshots.

Policies are pure functions of their configuration, their statistics and a random
generator. Statistics are named arrays that add up (``merge``), so learners can
apply deltas in any order and replaying the same examples gives the same state.
A snapshot is the immutable, serving-ready form of the statistics.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

Arrays = dict[str, np.ndarray]
"""Named arrays: the storage-neutral form of statistics and snapshots."""


@dataclass(frozen=True)
class ActionSet:
    """The candidates of one decision, featurized.

    ``features[i]`` is the hashed context × action vector of action ``ids[i]``;
    ``context`` is the hashed context alone (for per-action models).
    Excluded actions stay in the set with ``eligible[i] = False`` so that the
    probability vector lines up with the request's action list.
    """

    ids: tuple[str, ...]
    context: np.ndarray
    features: np.ndarray
    eligible: np.ndarray


@dataclass(frozen=True)
class Batch:
    """Joined examples to learn from: what was chosen, with which features, and the reward."""

    action_ids: tuple[str, ...]
    contexts: np.ndarray
    features: np.ndarray
    rewards: np.ndarray
    propensities: np.ndarray
    weights: np.ndarray | None = None
    """Per-example weights (forgetting discounts the older ones); None weighs all equally."""

    def __len__(self) -> int:
        return len(self.action_ids)

    def weight_vector(self) -> np.ndarray:
        return np.ones(len(self)) if self.weights is None else np.asarray(self.weights, dtype=float)


class Policy(ABC):
    """A bandit policy: ``statistics`` learns, ``snapshot`` freezes, ``probabilities`` decides."""

    name: ClassVar[str]
    statistics_family: ClassVar[str] = ""
    """Policies of one non-empty family read each other's statistics (a config change keeps them)."""

    @abstractmethod
    def statistics(self, batch: Batch) -> Arrays:
        """Sufficient statistics of ``batch``; adding them to a state is learning."""

    @abstractmethod
    def snapshot(self, statistics: Arrays) -> Arrays:
        """Serving parameters derived from accumulated statistics (priors applied here)."""

    @abstractmethod
    def probabilities(
        self, snapshot: Arrays, actions: ActionSet, rng: np.random.Generator
    ) -> np.ndarray:
        """Probability of choosing each action: sums to one, zero exactly on ineligible ones."""
