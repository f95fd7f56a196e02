"""Learn from joined examples: additive statistics, one new policy version per loop per update.

A loop learns at most once per ``updateInterval`` (``decide.learning.update_due``);
examples closed in between are archived as not yet learned and picked up by the
next update. The archive's ``learned`` flag changes in the same transaction as
the version it went into, so no example is ever applied twice, whatever crashes.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from decide.events.schemas import decode
from decide.learning import statistics_after, update_due
from decide.pipeline.joins import JoinedExample
from decide.store import queries
from decide.store.arrays import unpack
from decide.store.bulk import among, id_chunks, insert_rows
from decide.store.models import Example


@dataclass(frozen=True)
class LearnedVersion:
    loop: str
    version: int
    examples: int


def learn(session: Session, examples: list[JoinedExample], now: float | None = None) -> list[LearnedVersion]:
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
        if not update_due(config, current.created_at, now):
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
        statistics = statistics_after(config, config.build_policy(), unpack(current.statistics), decisions, rewards)
        total = current.examples_learned + len(decisions)
        row = queries.add_version(session, loop, config, statistics, total, f"learned {len(decisions)} examples")
        written.append(LearnedVersion(loop, row.version, len(decisions)))
    return written


def archive(session: Session, examples: list[JoinedExample], learned: bool) -> None:
    """Keep closed joins in ``examples``, the archive offline evaluation reads; ``learned`` says whether they were."""
    insert_rows(
        session,
        Example.__table__,
        [
            {
                "event_id": example.event_id,
                "loop": example.loop,
                "decided_at": example.decision.timestamp if example.decision else None,
                "closed_at": example.closed_at,
                "decision": example.decision_json,
                "reward": example.reward,
                "reward_count": example.reward_count,
                "reason": example.reason,
                "learned": learned and example.learnable,
            }
            for example in examples
        ],
    )
