"""The learner on its own (``decide.pipeline.learner.learn``) over a SQLite file: what it archives, when it learns,
what a version it writes holds, and what it leaves for the next update."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from decide.config import LoopConfig
from decide.events.schemas import Decision, encode
from decide.pipeline.joins import JoinedExample
from decide.pipeline.learner import LearnedVersion, learn
from decide.store import queries
from decide.store.arrays import unpack
from decide.store.db import make_engine, writer_sessions
from decide.store.models import Base, Example

CONFIG = LoopConfig(policy="beta_thompson", updateInterval=10.0)


@pytest.fixture
def sessions(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'learner.db'}")
    Base.metadata.create_all(engine)
    yield writer_sessions(engine)
    engine.dispose()


def created(sessions, loop: str, config: LoopConfig = CONFIG) -> float:
    """Create ``loop``; returns when its first version was made."""
    with sessions.begin() as session:
        return queries.create_loop(session, loop, config).created_at


def example(event_id: str, loop: str | None, reason: str, reward: float | None, chosen: str = "a") -> JoinedExample:
    if reason == "unmatched":
        return JoinedExample(event_id, loop, None, None, 2, "unmatched", 50.0)
    decision = Decision(event_id=event_id, loop=loop, timestamp=40.0, policy_version=1, context=[{"x": 1.0}],
                        actions=[{"id": "a"}, {"id": "b"}], excluded=[], chosen=chosen, probabilities=[0.5, 0.5])
    count = {"observed": 1, "default": 0, "deactivated": 0}[reason]
    return JoinedExample(event_id, loop, decision, reward, count, reason, 50.0, encode(decision))


def archived(sessions) -> dict[str, tuple]:
    with sessions.begin() as session:
        return {
            row.event_id: (row.loop, row.decided_at, row.closed_at, row.decision, row.reward, row.reward_count, row.reason, row.learned)
            for row in session.scalars(select(Example))
        }


def state(sessions, loop: str) -> tuple[int, int, str, dict[str, float]]:
    with sessions.begin() as session:
        row = queries.current(session, loop)
        return row.version, row.examples_learned, row.note, {key: float(value[0]) for key, value in unpack(row.statistics).items()}


def test_a_due_loop_learns_its_learnable_examples_and_every_example_is_archived(sessions):
    start = created(sessions, "l")
    examples = [
        example("seen", "l", "observed", 1.0),
        example("quiet", "l", "default", 0.25, chosen="b"),
        example("hidden", "l", "deactivated", None),
        example("orphan", "l", "unmatched", None),
    ]
    with sessions.begin() as session:
        assert learn(session, examples, now=start + 10.0) == [LearnedVersion("l", 2, 2)]
    assert archived(sessions) == {
        "seen": ("l", 40.0, 50.0, examples[0].decision_json, 1.0, 1, "observed", True),
        "quiet": ("l", 40.0, 50.0, examples[1].decision_json, 0.25, 0, "default", True),
        "hidden": ("l", 40.0, 50.0, examples[2].decision_json, None, 0, "deactivated", False),
        "orphan": ("l", None, 50.0, None, None, 2, "unmatched", False),
    }
    assert state(sessions, "l") == (
        2, 2, "learned 2 examples", {"successes/a": 1.0, "failures/a": 0.0, "successes/b": 0.25, "failures/b": 0.75},
    )


def test_examples_closed_before_the_update_is_due_wait_for_the_next_update(sessions):
    start = created(sessions, "l")
    with sessions.begin() as session:
        assert learn(session, [example("early", "l", "observed", 1.0)], now=start + 9.5) == []
    assert archived(sessions)["early"][-1] is False
    assert state(sessions, "l")[:2] == (1, 0)
    with sessions.begin() as session:
        written = learn(session, [example("late", "l", "observed", 0.0)], now=start + 10.0)
    assert written == [LearnedVersion("l", 2, 2)]
    assert {event_id: row[-1] for event_id, row in archived(sessions).items()} == {"early": True, "late": True}
    assert state(sessions, "l")[1:] == (2, "learned 2 examples", {"successes/a": 1.0, "failures/a": 1.0})
    with sessions.begin() as session:
        assert learn(session, [], now=start + 1000.0) == [], "nothing left to learn: no new version"
    assert state(sessions, "l")[0] == 2


def test_the_backlog_alone_makes_a_version_once_due(sessions):
    start = created(sessions, "l")
    with sessions.begin() as session:
        learn(session, [example("early", "l", "default", 0.5), example("hidden", "l", "deactivated", None)], now=start)
    with sessions.begin() as session:
        assert learn(session, [], now=start + 10.0) == [LearnedVersion("l", 2, 1)]
    assert state(sessions, "l")[1:] == (1, "learned 1 examples", {"successes/a": 0.5, "failures/a": 0.5})
    assert archived(sessions)["hidden"][-1] is False


def test_examples_of_an_unknown_loop_are_archived_unlearned(sessions):
    start = created(sessions, "l")
    with sessions.begin() as session:
        written = learn(session, [example("gone", "deleted", "observed", 1.0), example("kept", "l", "observed", 1.0)],
                        now=start + 10.0)
    assert written == [LearnedVersion("l", 2, 1)]
    assert archived(sessions)["gone"][-1] is False


def test_every_due_loop_gets_its_own_version_in_name_order(sessions):
    start = max(created(sessions, "zeta"), created(sessions, "alpha"))
    examples = [example("z1", "zeta", "observed", 1.0), example("a1", "alpha", "observed", 0.0),
                example("z2", "zeta", "observed", 1.0)]
    with sessions.begin() as session:
        assert learn(session, examples, now=start + 10.0) == [LearnedVersion("alpha", 2, 1), LearnedVersion("zeta", 2, 2)]
    assert state(sessions, "zeta")[3] == {"successes/a": 2.0, "failures/a": 0.0}
    assert state(sessions, "alpha")[3] == {"successes/a": 0.0, "failures/a": 1.0}


def test_without_a_time_the_learner_goes_by_the_clock(sessions):
    created(sessions, "now", LoopConfig(policy="beta_thompson", updateInterval=0.0))
    created(sessions, "later", LoopConfig(policy="beta_thompson", updateInterval=3600.0))
    with sessions.begin() as session:
        written = learn(session, [example("n", "now", "observed", 1.0), example("l", "later", "observed", 1.0)])
    assert written == [LearnedVersion("now", 2, 1)]
    assert np.isclose(state(sessions, "now")[3]["successes/a"], 1.0)


def test_a_loop_not_yet_due_neither_stops_the_others_nor_lends_them_its_examples(sessions):
    created(sessions, "alpha", LoopConfig(policy="beta_thompson", updateInterval=3600.0))
    start = created(sessions, "zeta")
    with sessions.begin() as session:
        written = learn(session, [example("a1", "alpha", "observed", 1.0), example("z1", "zeta", "observed", 0.0)],
                        now=start + 10.0)
    assert written == [LearnedVersion("zeta", 2, 1)]
    assert state(sessions, "zeta")[3] == {"successes/a": 0.0, "failures/a": 1.0}
    assert {event_id: row[-1] for event_id, row in archived(sessions).items()} == {"a1": False, "z1": True}
