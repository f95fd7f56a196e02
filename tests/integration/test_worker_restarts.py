"""A worker restarted at random, and failing at random, ends exactly where an uninterrupted one does.

The log mixes everything the joins handle: deferred decisions with and without
activation, rewards before and after their decisions and outside their windows,
several rewards per event, and records delivered twice. Small batches keep many
joins open in memory across cycles, so a restart must rebuild them from the
stored offsets.
"""

from __future__ import annotations

import random
import time

import numpy as np
import pytest
from sqlalchemy import select

from decide.events.schemas import Activation, Decision, Event, Reward, encode, stream_of
from decide.pipeline import worker as worker_module
from decide.pipeline.worker import Worker
from decide.store import queries
from decide.store.arrays import unpack
from decide.store.models import Example, PendingJoin
from tests.conftest import Service, make_service

ACTIONS = [{"id": "a", "features": [{"colour": "red"}]}, {"id": "b", "features": [{"colour": "blue"}]}]


def mixed_log(rng: random.Random, decisions: int) -> list[Event]:
    """Events in the order their records reach the log: by timestamp, redeliveries later."""
    start = time.time() - 5000
    timed: list[tuple[float, Event]] = []
    for number in range(decisions):
        at = start + number * 0.7 + rng.random() * 0.1
        event_id = f"e{number}"
        if rng.random() < 0.9:
            deferred = rng.random() < 0.2
            decision = Decision(
                event_id=event_id, loop="default", timestamp=at, policy_version=1, context=[{"user": {"x": rng.random()}}],
                actions=ACTIONS, excluded=[], chosen=rng.choice("ab"), probabilities=[0.5, 0.5], deferred=deferred,
            )
            timed.append((at, decision))
            if rng.random() < 0.1:
                timed.append((at + rng.uniform(0, 30), decision))
            if deferred and rng.random() < 0.7:
                activated = at + rng.uniform(0, 15)
                timed.append((activated, Activation(event_id, activated, loop="default")))
        for _ in range(rng.choice([0, 1, 1, 2, 3])):
            rewarded = at + rng.uniform(-3, 9)
            reward = Reward(event_id, float(rng.random() < 0.5), rewarded, loop="default")
            timed.append((rewarded, reward))
            if rng.random() < 0.1:
                timed.append((rewarded + rng.uniform(0, 30), reward))
    return [event for _, event in sorted(timed, key=lambda pair: pair[0])]


def service_with(database_url: str, events: list[Event]) -> Service:
    service = make_service(database_url, worker_batch=16)
    response = service.client.patch("/loops/default/config", json={"rewardWaitTime": 5, "activationTimeout": 20, "updateInterval": 0.01})
    assert response.status_code == 200, response.json
    log = service.app.extensions["decide"].event_log
    for event in events:
        log.append(stream_of(event), event.event_id, encode(event))
    return service


def drain(service: Service, rng: random.Random | None = None) -> int:
    """Cycle until idle; with ``rng``, replace the worker before some cycles (a restart). Returns the restarts."""
    restarts = idle = 0
    while idle < 3:
        if rng is not None and rng.random() < 0.15:
            service.worker.close()
            service.worker = Worker(service.worker.sessions, service.app.extensions["decide"].event_log, service.settings, clock=service.clock)
            restarts += 1
        try:
            result = service.worker.cycle(timeout=0)
        except RuntimeError:
            idle = 0
            continue
        busy = result.records or result.closed or result.versions or result.conflict
        idle = 0 if busy else idle + 1
    return restarts


def final_state(service: Service):
    with service.app.extensions["decide"].sessions() as session:
        examples = {row.event_id: (row.reason, row.reward, row.reward_count, row.learned) for row in session.scalars(select(Example))}
        pending = list(session.scalars(select(PendingJoin.event_id)))
        current = queries.current(session, "default")
        return examples, pending, unpack(current.statistics), current.examples_learned


@pytest.mark.parametrize("seed", [1, 2])
def test_restarts_and_failed_cycles_leave_the_state_of_an_uninterrupted_run(tmp_path, monkeypatch, seed):
    events = mixed_log(random.Random(seed), 200)
    reference = service_with(f"sqlite:///{tmp_path / 'reference.db'}", events)
    drain(reference)

    interrupted = service_with(f"sqlite:///{tmp_path / 'interrupted.db'}", events)
    chaos = random.Random(seed + 100)
    learn = worker_module.learn

    def failing_sometimes(*args, **kwargs):
        if chaos.random() < 0.1:
            raise RuntimeError("injected failure before the commit")
        return learn(*args, **kwargs)

    monkeypatch.setattr(worker_module, "learn", failing_sometimes)
    restarts = drain(interrupted, chaos)
    monkeypatch.setattr(worker_module, "learn", learn)
    assert restarts >= 5

    for service in (reference, interrupted):
        service.advance(100)
        drain(service)
    assert_same_end(reference, interrupted)


def test_two_workers_taking_turns_on_every_partition_end_as_one_would(tmp_path, database_url):
    """Embedded-log members all own every partition; a member whose memory predates the other's commit starts over."""
    events = mixed_log(random.Random(3), 150)
    reference = service_with(f"sqlite:///{tmp_path / 'reference.db'}", events)
    drain(reference)
    shared = service_with(database_url, events)
    first = shared.worker
    second = Worker(first.sessions, shared.app.extensions["decide"].event_log, shared.settings, clock=shared.clock)
    turns = random.Random(4)
    conflicts = idle = 0
    while idle < 6:
        result = turns.choice((first, second)).cycle(timeout=0)
        conflicts += result.conflict
        idle = 0 if (result.records or result.closed or result.versions or result.conflict) else idle + 1
    second.close()
    assert conflicts > 0, "the members did interleave"
    for service in (reference, shared):
        service.advance(100)
        drain(service)
    assert_same_end(reference, shared)


def assert_same_end(reference: Service, other: Service) -> None:
    expected, got = final_state(reference), final_state(other)
    assert got[0] == expected[0], "every event closes the same way, with the same reward"
    assert len({reason for reason, *_ in expected[0].values()}) == 4, "the log exercises every way a join closes"
    assert expected[1] == got[1] == []
    assert got[3] == expected[3] > 0
    for name, value in expected[2].items():
        np.testing.assert_allclose(got[2][name], value, rtol=1e-9, atol=1e-12)
    for service in (reference, other):
        service.worker.close()
        service.engine.dispose()


def test_a_member_whose_memory_another_member_overtook_starts_over(database_url):
    """Regression: a member that kept acting on joins another member had closed archived one event twice, forever."""
    service = make_service(database_url, partitions=1)
    service.client.patch("/loops/default/config", json={"rewardWaitTime": 2, "activationTimeout": 3600})
    log = service.app.extensions["decide"].event_log
    now = time.time()
    for event_id, at, deferred in (("held", now - 1, True), ("joined", now, False)):
        decision = Decision(
            event_id=event_id, loop="default", timestamp=at, policy_version=1, context=[{"user": {"x": 1}}],
            actions=ACTIONS, excluded=[], chosen="a", probabilities=[0.5, 0.5], deferred=deferred,
        )
        log.append(stream_of(decision), decision.event_id, encode(decision))
    first = service.worker
    second = Worker(first.sessions, log, service.settings, clock=service.clock)
    first.cycle(timeout=0)
    service.client.patch("/loops/default/config", json={"rewardWaitTime": 600})
    second.cycle(timeout=0)
    first.cycle(timeout=0)
    service.advance(3)
    first.cycle(timeout=0)
    service.advance(7)
    second.cycle(timeout=0)
    service.advance(700)
    results = [member.cycle(timeout=0) for _ in range(4) for member in (first, second)]
    assert sum(not result.conflict for result in results) >= 4, "turns alternate between the members; neither is locked out"
    with service.app.extensions["decide"].sessions() as session:
        assert list(session.scalars(select(Example.event_id).where(Example.event_id == "joined"))) == ["joined"]
        assert "joined" not in set(session.scalars(select(PendingJoin.event_id)))
    second.close()
    service.worker.close()
    service.engine.dispose()
