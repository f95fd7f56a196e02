"""On SQLite the worker looks up a batch's stored and closed joins before it takes the database's write lock.

Every API append waits for that lock, so the worker holds it as briefly as it
can; the look-ups' answer must still be the one a look-up under the lock would
have given, and be dropped when another member commits in between.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import insert, select

from decide.events.schemas import Reward
from decide.pipeline.worker import CycleResult, Worker
from decide.store.db import writer_sessions
from decide.store.models import Example, PendingJoin
from tests.conftest import Service, make_service
from tests.integration.test_joining import append, decision, example


@pytest.fixture
def sqlite_service(tmp_path) -> Iterator[Service]:
    built = make_service(f"sqlite:///{tmp_path / 'decide.db'}")
    yield built
    built.worker.close()
    built.engine.dispose()


def closed_and_stored(service: Service, legacy: bool = False) -> float:
    """e1 closed (reward 0.5) and e2 open in ``pending_joins`` for ten minutes; with ``legacy``, e3 stored there too,
    without a partition (as before revision 0003). Returns the time the events are dated from."""
    now = service.clock()
    service.client.patch("/loops/default/config", json={"rewardWaitTime": 5})
    append(service, decision("e1", now - 100))
    append(service, Reward("e1", 0.5, now - 99))
    service.learn_all()
    service.client.patch("/loops/default/config", json={"rewardWaitTime": 600})
    append(service, decision("e2", now - 50))
    service.learn_all()
    if legacy:
        with writer_sessions(service.engine).begin() as session:
            session.execute(insert(PendingJoin.__table__), [{
                "event_id": "e3", "loop": "default", "partition": None, "decision": None, "first_seen": now - 50,
                "activated_at": None, "close_at": now + 550, "rewards": "[]",
            }])
    assert (example(service, "e1").reason, example(service, "e1").reward) == ("observed", 0.5)
    assert set(stored_rewards(service)) == ({"e2", "e3"} if legacy else {"e2"})
    return now


def append_duplicate_late_and_stored(service: Service, now: float, legacy: bool = False) -> None:
    """A duplicate decision and a late reward of closed e1, a reward for stored e2, and with ``legacy`` one for e3."""
    append(service, decision("e1", now - 100))
    append(service, Reward("e1", 0.9, now - 98))
    append(service, Reward("e2", 1.0, now - 49))
    if legacy:
        append(service, Reward("e3", 0.25, now - 49))


def stored_rewards(service: Service) -> dict[str, list[float]]:
    with service.app.extensions["decide"].sessions() as session:
        rows = session.execute(select(PendingJoin.event_id, PendingJoin.rewards))
        return {event_id: [value for _, _, value in json.loads(rewards)] for event_id, rewards in rows}


def assert_joined_once_each(service: Service, result: CycleResult, legacy: bool = False) -> None:
    """The checked cycle counted e1's records as a duplicate and a late reward, kept the stored joins' rewards, and
    every join then closes once, as it should."""
    assert (result.records, result.counts.duplicates, result.counts.late_rewards, result.conflict) == (3 + legacy, 1, 1, False)
    assert stored_rewards(service) == ({"e2": [1.0], "e3": [0.25]} if legacy else {"e2": [1.0]})
    service.advance(700)
    service.learn_all()
    ids = ("e1", "e2", "e3") if legacy else ("e1", "e2")
    closed = {event_id: (example(service, event_id).reason, example(service, event_id).reward,
                         example(service, event_id).reward_count) for event_id in ids}
    expected = {"e1": ("observed", 0.5, 1), "e2": ("observed", 1.0, 1), "e3": ("unmatched", None, 1)}
    assert closed == {event_id: expected[event_id] for event_id in ids}
    assert stored_rewards(service) == {}


def after_look_up(worker: Worker, then: Callable[[], None]) -> None:
    """Run ``then`` once, right after ``worker``'s next look-up of stored and closed joins."""
    look_up, done = worker.joiner.look_up, []

    def looked_up(*args, **kwargs):
        found = look_up(*args, **kwargs)
        if not done:
            done.append(then())
        return found

    worker.joiner.look_up = looked_up


@pytest.mark.parametrize("legacy", [False, True], ids=["stored", "stored-without-partition"])
def test_a_duplicate_of_a_closed_event_and_a_reward_for_a_stored_join_are_handled_in_one_cycle(service, legacy):
    now = closed_and_stored(service, legacy)
    append_duplicate_late_and_stored(service, now, legacy)
    assert_joined_once_each(service, service.worker.cycle(timeout=0), legacy)


def test_the_look_ups_complete_while_another_connection_holds_the_sqlite_write_lock(sqlite_service):
    service = sqlite_service
    now = closed_and_stored(service)
    append_duplicate_late_and_stored(service, now)
    looked_up = threading.Event()
    after_look_up(service.worker, looked_up.set)
    outcome: dict[str, CycleResult | BaseException] = {}

    def cycle() -> None:
        try:
            outcome["result"] = service.worker.cycle(timeout=0)
        except BaseException as error:  # reported by the assertion below
            outcome["result"] = error

    holder = sqlite3.connect(service.engine.url.database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    worker = threading.Thread(target=cycle)
    try:
        worker.start()
        assert looked_up.wait(timeout=20), "the look-ups waited for the write lock"
        assert "result" not in outcome, "the cycle's own transaction waits for the lock"
    finally:
        holder.rollback()
        holder.close()
        worker.join(timeout=60)
    assert isinstance(outcome.get("result"), CycleResult), outcome
    assert_joined_once_each(service, outcome["result"])


def test_a_member_that_commits_between_the_look_ups_and_the_transaction_makes_the_cycle_start_over(sqlite_service):
    """Embedded-log members own every partition: the other's commit moves this one's offsets, and its look-ups are dropped."""
    service = sqlite_service
    now = closed_and_stored(service)
    append(service, Reward("e2", 1.0, now - 49))
    service.advance(700)
    other = Worker(service.worker.sessions, service.app.extensions["decide"].event_log, service.settings, clock=service.clock)
    other_results: list[CycleResult] = []
    after_look_up(service.worker, lambda: other_results.append(other.cycle(timeout=0)))
    overtaken = service.worker.cycle(timeout=0)
    other.close()
    assert other_results[0].closed >= 1 and not other_results[0].conflict, "the other member closed e2 meanwhile"
    assert overtaken.conflict
    service.learn_all()
    assert (example(service, "e2").reason, example(service, "e2").reward, example(service, "e2").reward_count) == ("observed", 1.0, 1)
    with service.app.extensions["decide"].sessions() as session:
        assert list(session.scalars(select(Example.event_id).where(Example.event_id == "e2"))) == ["e2"]
