"""A worker killed with SIGKILL mid-stream and restarted ends in exactly the uninterrupted state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
from sqlalchemy import func, select

from decide.events.schemas import Decision, Reward, encode, stream_of
from decide.store import queries
from decide.store.arrays import unpack
from decide.store.models import Example, PendingJoin
from tests.conftest import make_service

EVENTS = 3000
LOOP = "crash"
CONFIG = {"policy": "linucb", "rewardWaitTime": 0.0, "updateInterval": 0.01}


CHUNK = 100


def logged_events(seed: int = 7) -> list[Decision | Reward]:
    """The same decisions and rewards every time, with windows that have already closed."""
    rng = np.random.default_rng(seed)
    start = time.time() - 1000
    actions = [{"id": f"a{i}", "features": [{"colour": f"c{i % 3}"}]} for i in range(4)]
    events: list[Decision | Reward] = []
    for number in range(EVENTS):
        chosen = f"a{rng.integers(4)}"
        decision = Decision(
            event_id=f"e{number}", loop=LOOP, timestamp=start + number * 0.01, policy_version=1,
            context=[{"user": {"segment": f"s{rng.integers(5)}", "x": float(rng.normal())}}],
            actions=actions, excluded=[], chosen=chosen, probabilities=[0.25] * 4,
        )
        events += [decision, Reward(f"e{number}", float(rng.random() < 0.3), decision.timestamp, loop=LOOP)]
    return events


def fill(service, events: list[Decision | Reward]) -> None:
    log = service.app.extensions["decide"].event_log
    for event in events:
        log.append(stream_of(event), event.event_id, encode(event))


def learned_statistics(service) -> tuple[dict[str, np.ndarray], int]:
    with service.app.extensions["decide"].sessions() as session:
        current = queries.current(session, LOOP)
        return unpack(current.statistics), current.examples_learned


def archived(service) -> int:
    with service.app.extensions["decide"].sessions() as session:
        return session.scalar(select(func.count()).select_from(Example))


def start_worker(database_url: str) -> subprocess.Popen:
    environment = os.environ | {"DECIDE_DATABASE_URL": database_url, "DECIDE_WORKER_BATCH": "200", "DECIDE_JOIN_GRACE": "0"}
    return subprocess.Popen([sys.executable, "-m", "decide", "worker"], env=environment, stderr=subprocess.DEVNULL)


def test_sigkill_mid_stream_then_restart_equals_an_uninterrupted_pass(database_url, tmp_path):
    events = logged_events()
    crashed = make_service(database_url)
    crashed.create_loop(LOOP, **CONFIG)

    reference = make_service(f"sqlite:///{tmp_path / 'reference.db'}")
    reference.create_loop(LOOP, **CONFIG)
    fill(reference, events)
    reference.learn_all(cycles=500)
    expected, expected_count = learned_statistics(reference)
    assert expected_count == EVENTS

    # Rewards first: each decision then finds its reward waiting and closes at once, so the joins cannot
    # depend on when the worker reads what (these windows are long past: a reward read after its
    # decision's window closed would rightly be late). The test then paces the decisions: it kills the
    # worker right after handing it a fresh chunk, with chunks still to come, so each kill lands
    # mid-stream however fast the worker gets through its backlog.
    fill(crashed, [event for event in events if isinstance(event, Reward)])
    decisions = [event for event in events if isinstance(event, Decision)]
    chunks = [decisions[start:start + CHUNK] for start in range(0, EVENTS, CHUNK)]
    produced = kills = 0
    worker = start_worker(database_url)
    for kill in (1, 2, 3):
        while produced < kill * len(chunks) // 4:
            fill(crashed, chunks[produced])
            produced += 1
        deadline = time.monotonic() + 60
        while archived(crashed) < (produced - 1) * CHUNK and time.monotonic() < deadline:
            time.sleep(0.01)
        fill(crashed, chunks[produced])
        produced += 1
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        kills += archived(crashed) < EVENTS
        worker = start_worker(database_url)
    fill(crashed, [event for chunk in chunks[produced:] for event in chunk])
    deadline = time.monotonic() + 120
    while archived(crashed) < EVENTS and time.monotonic() < deadline:
        time.sleep(0.01)
    settle = time.monotonic() + 30
    while learned_statistics(crashed)[1] < EVENTS and time.monotonic() < settle:
        time.sleep(0.05)
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=30)

    assert kills == 3
    statistics, count = learned_statistics(crashed)
    assert count == EVENTS and archived(crashed) == EVENTS
    with crashed.app.extensions["decide"].sessions() as session:
        assert session.scalar(select(func.count()).select_from(PendingJoin)) == 0
    assert statistics.keys() == expected.keys()
    for name in expected:
        np.testing.assert_allclose(statistics[name], expected[name], rtol=1e-9, atol=1e-9)
    crashed.engine.dispose()
    reference.engine.dispose()
