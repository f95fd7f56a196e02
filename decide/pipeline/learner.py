"""Learn from joined examples: additive statistics, one new policy version per loop per update.

A loop learns at most once per ``updateInterval``; examples closed in between
are archived as not yet learned and picked up by the next update. The archive's
``learned`` flag changes in the same transaction as the version it went into,
so no example is ever applied twice, whatever crashes.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from decide.config import LoopConfig
from decide.events.schemas import Decision, decode
from decide.features import FeatureSpace
from decide.pipeline.joiner import JoinedExample, archive
from decide.policies import make_policy
from decide.policies.base import Batch
from decide.policies.state import merge
from decide.store import queries
from decide.store.arrays import unpack
from decide.store.bulk import among, id_chunks
from decide.store.models import Example


@dataclass(frozen=True)
class LearnedVersion:
    loop: str
    version: int
    examples: int


def batch_of(config: LoopConfig, decisions: list[Decision], rewards: list[float]) -> Batch:
    """Featurize the chosen action of each decision the way the API featurized it.

    With forgetting (``discount`` < 1) the i-th of n examples weighs discount^(n-1-i):
    learning them in one batch or in several gives the same state.
    """
    space = FeatureSpace(dimension=config.featureDimension, interactions=config.interactions)
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


class Learner:
    def learn(self, session: Session, examples: list[JoinedExample], now: float | None = None) -> list[LearnedVersion]:
        """Archive ``examples`` and learn every loop whose update is due; returns the versions written."""
        now = time.time() if now is None else now
        by_loop: dict[str, list[JoinedExample]] = defaultdict(list)
        for example in examples:
            if example.learnable:
                by_loop[example.loop].append(example)
        archive(session, [example for example in examples if not example.learnable], learned=False)
        loops_with_backlog = set(
            session.scalars(select(Example.loop).where(Example.learned.is_(False), Example.reason.in_(("observed", "default"))).distinct())
        )
        written = []
        for loop in sorted(set(by_loop) | loops_with_backlog):
            fresh = by_loop.get(loop, [])
            try:
                current = queries.current(session, loop, for_update=True)
            except queries.LoopNotFound:
                archive(session, fresh, learned=False)
                continue
            config = queries.config_of(current)
            if now - current.created_at < config.updateInterval:
                archive(session, fresh, learned=False)
                continue
            archive(session, fresh, learned=True)
            backlog = list(
                session.execute(
                    select(Example.event_id, Example.decision, Example.reward).where(
                        Example.loop == loop, Example.learned.is_(False), Example.reason.in_(("observed", "default"))
                    )
                )
            )
            decisions = [decode(row.decision) for row in backlog] + [example.decision for example in fresh]
            rewards = [row.reward for row in backlog] + [example.reward for example in fresh]
            for ids in id_chunks(session, {row.event_id for row in backlog}):
                session.execute(update(Example).where(among(session, Example.event_id, ids)).values(learned=True))
            if not decisions:
                continue
            policy = make_policy(config.policy, config.featureDimension, config.policy_params())
            delta = policy.statistics(batch_of(config, decisions, rewards))
            statistics = merge(unpack(current.statistics), delta, discount=config.discount ** len(decisions))
            learned = current.examples_learned + len(decisions)
            row = queries.add_version(session, loop, config, statistics, learned, f"learned {len(decisions)} examples")
            written.append(LearnedVersion(loop, row.version, len(decisions)))
        return written
