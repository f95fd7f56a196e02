"""Workers on the real broker: killed mid-stream, killed beside a partner, fed duplicates.

Each checks the SQL state against what one uninterrupted pass over the same
events gives: every event archived once, every example learned once.
"""

from __future__ import annotations

import os
import signal
import time

from kafka import KafkaAdminClient

from decide.config import LoopConfig
from decide.events.schemas import DECISIONS, REWARDS, encode, stream_of
from decide.store import queries
from decide.store.arrays import unpack
from tests.conftest import make_service
from tests.kafka.conftest import assert_same_statistics, events, one_pass_statistics

EVENTS = 3000
CHUNK = 100
LOOP = "faults"


def test_a_worker_killed_mid_stream_and_restarted_ends_where_one_uninterrupted_pass_does(deployment):
    config = deployment.create_loop(LOOP, policy="linucb", rewardWaitTime=10.0, updateInterval=0.01)
    decisions, rewards = events(EVENTS, LOOP, decided_at=time.time() - 100)
    # Rewards first: each decision then finds its reward waiting and closes at once, whatever the
    # batches, so the joins cannot depend on where the kills land.
    deployment.produce(rewards)
    batch = {"DECIDE_WORKER_BATCH": "200", "DECIDE_JOIN_GRACE": "0"}
    worker = deployment.start_worker(**batch)
    deployment.wait_for(lambda: deployment.consumed(REWARDS) == EVENTS, 60, "the rewards to be consumed")
    # The test paces the stream: it kills the worker right after handing it a fresh chunk, with chunks
    # still to come, so each kill lands mid-stream however fast the worker gets through its backlog.
    chunks = [decisions[start:start + CHUNK] for start in range(0, EVENTS, CHUNK)]
    produced = 0
    for kill in (1, 2):
        while produced < kill * len(chunks) // 3:
            deployment.produce(chunks[produced])
            produced += 1
        deployment.wait_for(lambda: len(deployment.archived()) >= (produced - 1) * CHUNK, 60, f"{kill}/3 of the joins")
        deployment.produce(chunks[produced])
        produced += 1
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        assert len(deployment.archived()) < EVENTS, "the kill must land mid-stream"
        worker = deployment.start_worker(**batch)
    deployment.produce([decision for chunk in chunks[produced:] for decision in chunk])
    deployment.wait_for(lambda: deployment.learned(LOOP)[1] >= EVENTS, 90, "every example to be learned")

    statistics, learned = deployment.learned(LOOP)
    archived = deployment.archived()
    assert learned == EVENTS and len(archived) == len(set(archived)) == EVENTS and deployment.pending() == 0
    assert_same_statistics(statistics, one_pass_statistics(config, decisions, rewards))


def group_members(deployment) -> list[int]:
    """How many partitions each member of the pipeline's consumer group owns, as the broker sees it."""
    group = f"{deployment.settings.topic_prefix}decide-pipeline"
    admin = KafkaAdminClient(bootstrap_servers=deployment.settings.kafka_bootstrap)
    try:
        members = admin.describe_groups([group])[group]["members"]
    finally:
        admin.close()
    # Mid-rebalance a member's assignment is still empty (an empty string, not a mapping).
    return sorted(
        sum(len(topic["partitions"]) for topic in (member["member_assignment"] or {"assigned_partitions": []})["assigned_partitions"])
        for member in members
    )


def test_when_one_of_two_workers_dies_the_other_takes_over_and_nothing_is_lost_or_applied_twice(postgres_deployment):
    deployment = postgres_deployment
    deployment.create_loop(LOOP, policy="linucb", rewardWaitTime=1.0, updateInterval=0.05)
    first, second = deployment.start_worker(), deployment.start_worker()
    deployment.wait_for(lambda: group_members(deployment) == [4, 4], 60, "both workers to share the partitions")
    decisions, rewards = events(EVENTS, LOOP, decided_at=time.time())
    halves = [(decisions[: EVENTS // 2], rewards[: EVENTS // 2]), (decisions[EVENTS // 2 :], rewards[EVENTS // 2 :])]
    deployment.produce([event for pair in zip(*halves[0]) for event in pair])
    deployment.wait_for(lambda: len(deployment.archived()) >= EVENTS // 4, 60, "the workers to be mid-stream")
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    deployment.produce([event for pair in zip(*halves[1]) for event in pair])
    deployment.wait_for(lambda: deployment.learned(LOOP)[1] >= EVENTS, 90, "the survivor to learn every example")

    assert group_members(deployment) == [8], "the survivor owns every partition"
    assert deployment.consumed(DECISIONS) == deployment.consumed(REWARDS) == EVENTS
    archived = deployment.archived()
    statistics, learned = deployment.learned(LOOP)
    assert len(archived) == len(set(archived)) == EVENTS
    assert learned == EVENTS and statistics["n"][0] == EVENTS, "each example learned exactly once"
    assert second.poll() is None


def test_records_delivered_twice_change_nothing(database_url, kafka_bootstrap, topic_prefix, tmp_path):
    """The same records twice in the log (a producer retry, a spool forwarded again), then all of them once more late."""
    service = make_service(
        database_url, event_log="kafka", kafka_bootstrap=kafka_bootstrap, topic_prefix=topic_prefix, spool_path=str(tmp_path / "spool.db")
    )
    config = LoopConfig.from_json({"policy": "linucb", "rewardWaitTime": 5.0, "updateInterval": 0.01})
    service.create_loop(LOOP, **config.to_json())
    decisions, rewards = events(100, LOOP, decided_at=time.time())
    twice = [event for pair in zip(decisions, rewards) for event in (pair[0], pair[0], pair[1], pair[1])]
    duplicates = 0

    def consume(count: int) -> None:
        nonlocal duplicates
        deadline = time.monotonic() + 60
        while count > 0 and time.monotonic() < deadline:
            result = service.worker.cycle(timeout=0.5)
            count -= result.records
            duplicates += result.counts.duplicates + result.counts.late_rewards
        assert count == 0, f"{count} records were not consumed"

    def learned_statistics() -> tuple[dict, int]:
        with service.app.extensions["decide"].sessions() as session:
            current = queries.current(session, LOOP)
            return unpack(current.statistics), current.examples_learned

    event_log = service.app.extensions["decide"].event_log
    for event in twice:
        event_log.append(stream_of(event), event.event_id, encode(event))
    consume(len(twice))
    service.advance(10)
    service.learn_all()
    statistics, learned = learned_statistics()
    assert learned == len(decisions) and duplicates == 2 * len(decisions)
    assert_same_statistics(statistics, one_pass_statistics(config, decisions, rewards))

    for event in twice:
        event_log.append(stream_of(event), event.event_id, encode(event))
    consume(len(twice))
    service.advance(10)
    service.learn_all()
    assert learned_statistics()[1] == len(decisions), "redelivered after the joins closed: still nothing"
    assert_same_statistics(learned_statistics()[0], statistics)
    service.worker.close()
    service.app.extensions["decide"].event_log.close()
    service.engine.dispose()
