"""Join decisions with their rewards by event id, with Personalizer's semantics.

A join window opens when a decision is activated (at rank time unless deferred)
and closes ``rewardWaitTime`` later. Rewards timestamped inside the window are
aggregated (earliest or sum); a window with none gets the default reward. A
deferred decision never activated within ``activationTimeout`` closes as
``deactivated`` and is not learned. Rewards that come before their decision wait
for it; if it never comes they close as ``unmatched``. Every closed join is
archived in ``examples``, whose primary key makes a second close of the same
event impossible, and each record's ``id`` makes a redelivered record count once.

Windows are judged on the events' own timestamps, so replaying the same records
gives the same joins whatever the processing speed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import delete, insert, inspect, select
from sqlalchemy.orm import Session

from decide.config import LoopConfig
from decide.events.schemas import Activation, Decision, Event, JoinReason, Reward, decode
from decide.store.models import Example, PendingJoin

ConfigLookup = Callable[[str | None], LoopConfig]


@dataclass(frozen=True)
class JoinedExample:
    event_id: str
    loop: str | None
    decision: Decision | None
    reward: float | None
    reward_count: int
    reason: JoinReason
    closed_at: float
    decision_json: str | None = None
    """The decision as stored, archived as is rather than encoded again."""

    @property
    def learnable(self) -> bool:
        return self.reason in ("observed", "default")


@dataclass
class JoinCounts:
    """What a batch did, for metrics: duplicates and late rewards are counted, never applied."""

    duplicates: int = 0
    late_rewards: int = 0


class Joiner:
    def __init__(self, config_of: ConfigLookup) -> None:
        self.config_of = config_of
        self._decided: dict[str, Decision] = {}
        """Decisions applied by this joiner: one that closes in the same cycle is not parsed back from JSON."""
        self._opened: list[PendingJoin] = []
        """Joins this joiner opened: those already due when it closes joins never reach the database."""

    def apply(self, session: Session, records: Iterable[str]) -> JoinCounts:
        """Fold logged records (events as JSON) into the pending joins; a decision is kept as it was logged."""
        logged = [(decode(text), text) for text in records]
        counts = JoinCounts()
        ids = {event.event_id for event, _ in logged}
        # Lock first, then look for closed joins: a join another member closes meanwhile is then seen closed.
        pending = {
            row.event_id: row
            for row in session.scalars(select(PendingJoin).where(PendingJoin.event_id.in_(ids)).with_for_update())
        }
        closed = _closed_ids(session, ids)
        for event, text in logged:
            if event.event_id in closed:
                counts.duplicates += isinstance(event, Decision)
                counts.late_rewards += isinstance(event, Reward)
                continue
            row = pending.get(event.event_id)
            if row is None:
                row = pending[event.event_id] = self._open(session, event)
            if isinstance(event, Decision):
                counts.duplicates += not self._decide(row, event, text)
            elif isinstance(event, Reward):
                counts.duplicates += not _add_reward(row, event)
            else:
                self._activate(row, event)
        return counts

    def _open(self, session: Session, event: Event) -> PendingJoin:
        config = self.config_of(event.loop)
        row = PendingJoin(
            event_id=event.event_id,
            loop=event.loop,
            decision=None,
            first_seen=event.timestamp,
            activated_at=None,
            close_at=event.timestamp + config.activationTimeout + config.rewardWaitTime,
            rewards="[]",
        )
        session.add(row)
        self._opened.append(row)
        return row

    def _decide(self, row: PendingJoin, decision: Decision, text: str) -> bool:
        if row.decision is not None:
            return False
        config = self.config_of(decision.loop)
        row.loop = decision.loop
        row.decision = text
        self._decided[decision.event_id] = decision
        if not decision.deferred:
            row.activated_at = decision.timestamp
        if row.activated_at is not None:
            row.close_at = row.activated_at + config.rewardWaitTime
        else:
            row.close_at = decision.timestamp + config.activationTimeout
        return True

    def _activate(self, row: PendingJoin, activation: Activation) -> None:
        if row.activated_at is not None:
            return
        row.activated_at = activation.timestamp
        if row.decision is not None:
            row.close_at = activation.timestamp + self.config_of(row.loop).rewardWaitTime

    def close_due(self, session: Session, now: float, limit: int = 50_000) -> list[JoinedExample]:
        """Close every join whose window ended by ``now``, archive it, and return it.

        Joins that another member is closing or updating right now are skipped, never closed twice.
        """
        unwritten = [row for row in self._opened if row.close_at <= now and inspect(row).pending]
        for row in unwritten:
            session.expunge(row)
        due = select(PendingJoin).where(PendingJoin.close_at <= now).order_by(PendingJoin.close_at).limit(limit)
        rows = list(session.scalars(due.with_for_update(skip_locked=True)))
        examples = [self._close(row, now) for row in unwritten + rows]
        if rows:
            closed = delete(PendingJoin).where(PendingJoin.event_id.in_([row.event_id for row in rows]))
            session.execute(closed.execution_options(synchronize_session=False))
        return examples

    def _close(self, row: PendingJoin, now: float) -> JoinedExample:
        if row.decision is None:
            rewards = json.loads(row.rewards)
            return JoinedExample(row.event_id, row.loop, None, None, len(rewards), "unmatched", now)
        decision = self._decided.get(row.event_id) or Decision(**json.loads(row.decision))
        if row.activated_at is None:
            return JoinedExample(row.event_id, row.loop, decision, None, 0, "deactivated", now, row.decision)
        config = self.config_of(row.loop)
        in_window = [(ts, value) for _, ts, value in json.loads(row.rewards) if ts <= row.close_at]
        if not in_window:
            return JoinedExample(row.event_id, row.loop, decision, config.defaultReward, 0, "default", now, row.decision)
        if config.rewardAggregation == "sum":
            value = float(sum(value for _, value in in_window))
        else:
            value = min(in_window, key=lambda pair: pair[0])[1]
        return JoinedExample(row.event_id, row.loop, decision, value, len(in_window), "observed", now, row.decision)


def archive(session: Session, examples: list[JoinedExample], learned: bool) -> None:
    if not examples:
        return
    session.execute(
        insert(Example),
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


def _closed_ids(session: Session, ids: set[str]) -> set[str]:
    if not ids:
        return set()
    return set(session.scalars(select(Example.event_id).where(Example.event_id.in_(ids))))


def _add_reward(row: PendingJoin, reward: Reward) -> bool:
    rewards = json.loads(row.rewards)
    if any(record_id == reward.id for record_id, _, _ in rewards):
        return False
    rewards.append([reward.id, reward.timestamp, reward.value])
    row.rewards = json.dumps(rewards)
    return True
