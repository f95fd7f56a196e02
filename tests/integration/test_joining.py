"""Reward-join semantics, one test each, on SQLite and PostgreSQL through the real event log."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from decide.events.schemas import Activation, Decision, Event, Reward, encode, stream_of
from decide.pipeline.worker import Worker
from decide.store import queries
from decide.store.models import Example, PendingJoin
from tests.conftest import make_service

ACTIONS = [{"id": "a", "features": [{"colour": "red"}]}, {"id": "b", "features": [{"colour": "blue"}]}]


def append(service, event: Event) -> None:
    service.app.extensions["decide"].event_log.append(stream_of(event), event.event_id, encode(event))


def decision(event_id: str, timestamp: float, loop: str = "default", deferred: bool = False) -> Decision:
    return Decision(
        event_id=event_id, loop=loop, timestamp=timestamp, policy_version=1, context=[{"user": {"tier": "gold"}}],
        actions=ACTIONS, excluded=[], chosen="a", probabilities=[0.6, 0.4], deferred=deferred,
    )


def restart_worker(service) -> None:
    """A new worker process in effect: nothing survives but the database and the log."""
    service.worker.close()
    service.worker = Worker(service.worker.sessions, service.app.extensions["decide"].event_log, service.settings, clock=service.clock)


def example(service, event_id: str) -> Example:
    with service.app.extensions["decide"].sessions() as session:
        return session.get(Example, event_id)


def learned(service, loop: str = "default") -> int:
    with service.app.extensions["decide"].sessions() as session:
        return queries.current(session, loop).examples_learned


def test_rewards_inside_the_wait_time_count_and_later_ones_do_not(service):
    service.client.patch("/loops/default/config", json={"rewardWaitTime": 10})
    t0 = time.time()
    append(service, decision("e1", t0))
    append(service, Reward("e1", 0.7, t0 + 5))
    append(service, Reward("e1", 0.1, t0 + 20))
    service.advance(30)
    service.learn_all()
    joined = example(service, "e1")
    assert (joined.reason, joined.reward, joined.reward_count) == ("observed", 0.7, 1)


def test_a_join_without_reward_gets_the_default_reward(service):
    service.client.patch("/loops/default/config", json={"rewardWaitTime": 5, "defaultReward": -0.5})
    append(service, decision("e1", time.time()))
    service.learn_all()
    assert example(service, "e1") is None, "closed before the wait time"
    service.advance(10)
    service.learn_all()
    joined = example(service, "e1")
    assert (joined.reason, joined.reward, joined.learned) == ("default", -0.5, True)
    assert learned(service) == 1


def test_earliest_aggregation_keeps_the_first_reward(service):
    service.client.patch("/loops/default/config", json={"rewardWaitTime": 10, "rewardAggregation": "earliest"})
    t0 = time.time()
    append(service, decision("e1", t0))
    append(service, Reward("e1", 0.3, t0 + 2))
    append(service, Reward("e1", 0.9, t0 + 1))
    service.advance(20)
    service.learn_all()
    assert (example(service, "e1").reward, example(service, "e1").reward_count) == (0.9, 2)


def test_sum_aggregation_adds_the_rewards(service):
    service.client.patch("/loops/default/config", json={"rewardWaitTime": 10, "rewardAggregation": "sum"})
    t0 = time.time()
    append(service, decision("e1", t0))
    append(service, Reward("e1", 0.25, t0 + 1))
    append(service, Reward("e1", 0.5, t0 + 2))
    service.advance(20)
    service.learn_all()
    assert example(service, "e1").reward == 0.75


def test_a_deferred_decision_never_activated_is_archived_but_not_learned(service):
    service.client.patch("/loops/default/config", json={"rewardWaitTime": 5, "activationTimeout": 60})
    append(service, decision("e1", time.time(), deferred=True))
    append(service, Reward("e1", 1.0, time.time()))
    service.advance(30)
    service.learn_all()
    assert example(service, "e1") is None, "still waiting for activation"
    service.advance(60)
    service.learn_all()
    joined = example(service, "e1")
    assert (joined.reason, joined.learned) == ("deactivated", False)
    assert learned(service) == 0


def test_activation_opens_the_reward_window(service):
    service.client.patch("/loops/default/config", json={"rewardWaitTime": 5, "activationTimeout": 600})
    t0 = time.time()
    append(service, decision("e1", t0, deferred=True))
    append(service, Activation("e1", t0 + 100))
    append(service, Reward("e1", 1.0, t0 + 103))
    service.advance(50)
    service.learn_all()
    assert example(service, "e1") is None, "the window runs from activation, not from the decision"
    service.advance(60)
    service.learn_all()
    joined = example(service, "e1")
    assert (joined.reason, joined.reward) == ("observed", 1.0)


@pytest.mark.parametrize("waited", [0.0, 30.0], ids=["in-memory", "written-to-the-database"])
def test_a_reward_that_arrives_before_its_decision_is_kept_and_joined_across_a_restart(service, waited):
    service.client.patch("/loops/default/config", json={"rewardWaitTime": 5, "activationTimeout": 600})
    t0 = time.time()
    append(service, Reward("e1", 1.0, t0 + 0.5))
    service.advance(waited)
    service.learn_all()
    with service.app.extensions["decide"].sessions() as session:
        stored = session.get(PendingJoin, "e1") is not None
    assert stored == (waited > service.settings.join_spill_after), "young joins stay in memory, older ones are written"
    restart_worker(service)
    append(service, decision("e1", t0))
    service.advance(10)
    service.learn_all()
    assert (example(service, "e1").reason, example(service, "e1").reward) == ("observed", 1.0)
    assert learned(service) == 1


def test_duplicate_records_and_repeated_ranks_count_once(service):
    service.client.patch("/loops/default/config", json={"rewardWaitTime": 5, "rewardAggregation": "sum"})
    t0 = time.time()
    original = decision("e1", t0)
    reward = Reward("e1", 1.0, t0 + 1)
    for event in (original, original, reward, reward, decision("e1", t0 + 0.1)):
        append(service, event)
    service.advance(10)
    service.learn_all()
    assert (example(service, "e1").reward, example(service, "e1").reward_count) == (1.0, 1)
    append(service, original)
    append(service, reward)
    service.advance(10)
    service.learn_all()
    with service.app.extensions["decide"].sessions() as session:
        assert session.scalars(select(PendingJoin)).all() == [], "a redelivered record must not reopen a closed join"
    assert learned(service) == 1


def test_a_reward_after_the_join_closed_is_refused_and_changes_nothing(service):
    service.client.patch("/loops/default/config", json={"rewardWaitTime": 1})
    answer = service.client.post("/rank", json={"actions": ACTIONS}).json
    service.advance(5)
    service.learn_all()
    before = learned(service)
    late = service.client.post("/reward", json={"eventId": answer["eventId"], "value": 1})
    assert late.status_code == 410 and late.json["field"] == "eventId"
    compat = service.client.post(f"/personalizer/v1.0/events/{answer['eventId']}/reward", json={"value": 1})
    assert compat.status_code == 204, "Personalizer accepts and ignores late rewards"
    service.advance(5)
    service.learn_all()
    assert learned(service) == before and example(service, answer["eventId"]).reason == "default"


def test_a_backlog_joins_as_it_would_have_live(database_url):
    """Decisions read ahead of their rewards wait for them: windows close on the log's event time, not the worker's clock."""
    service = make_service(database_url, worker_batch=16)
    try:
        service.client.patch("/loops/default/config", json={"rewardWaitTime": 2, "activationTimeout": 5})
        t0 = time.time() - 600
        ids = [f"e{i}" for i in range(40)]
        for i, event_id in enumerate(ids):
            append(service, decision(event_id, t0 + i))
        for i in range(200):
            append(service, Reward(f"old{i}", 1.0, t0 - 100 + i * 0.01))
        for i, event_id in enumerate(ids):
            append(service, Reward(event_id, 1.0, t0 + i + 1))
        service.learn_all(cycles=500)
        reasons = [example(service, event_id).reason for event_id in ids]
        assert reasons == ["observed"] * len(ids)
        service.advance(5)
        service.learn_all()
        assert learned(service) == len(ids)
    finally:
        service.worker.close()
        service.engine.dispose()
