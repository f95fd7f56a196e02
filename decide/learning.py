"""How a loop learns, the same wherever it is done: by the learner, in simulation, and in offline evaluation.

A loop learns its closed examples as one batch, featurized the way the API
featurized them, at most once per ``updateInterval`` after its current version.
With forgetting (``discount`` < 1) older evidence fades geometrically, so that
learning examples in one batch or in several gives the same state. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from decide.config import LoopConfig
from decide.events.schemas import Decision
from decide.policies import Arrays, Batch, Policy, merge


def batch_of(config: LoopConfig, decisions: Sequence[Decision], rewards: Sequence[float]) -> Batch:
    """Featurize the chosen action of each decision the way the API featurized it.

    With forgetting (``discount`` < 1) the i-th of n examples weighs discount^(n-1-i):
    learning them in one batch or in several gives the same state.
    """
    space = config.feature_space()
    chosen = [next(action for action in decision.actions if action["id"] == decision.chosen) for decision in decisions]
    contexts, features = space.chosen_vectors([(decision.context, action) for decision, action in zip(decisions, chosen)])
    return Batch(
        action_ids=tuple(decision.chosen for decision in decisions),
        contexts=contexts,
        features=features,
        rewards=np.asarray(rewards, dtype=float),
        propensities=np.asarray([decision.propensity for decision in decisions], dtype=float),
        weights=config.discount ** np.arange(len(decisions) - 1, -1, -1, dtype=float),
    )


def statistics_after(
    config: LoopConfig, policy: Policy, statistics: Arrays, decisions: Sequence[Decision], rewards: Sequence[float]
) -> Arrays:
    """``statistics`` after learning ``decisions`` (in order) with their ``rewards``: the old state discounted
    by discount^n, as if the n examples had been learned one at a time, plus theirs."""
    delta = policy.statistics(batch_of(config, decisions, rewards))
    return merge(statistics, delta, discount=config.discount ** len(decisions))


def update_due(config: LoopConfig, last_version_at: float, now: float) -> bool:
    """Whether a loop whose current version was made at ``last_version_at`` may learn at ``now``."""
    return now - last_version_at >= config.updateInterval
