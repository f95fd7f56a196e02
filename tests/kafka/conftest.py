"""A decide deployment on the real Kafka broker: settings, its database, `decide worker` processes, and events."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from kafka import KafkaProducer
from sqlalchemy import Engine, func, select

from decide.config import LoopConfig, Settings
from decide.events.kafka import KafkaLog
from decide.events.schemas import STREAMS, Decision, Event, Reward, encode, stream_of
from decide.learning import batch_of
from decide.policies import make_policy
from decide.store import queries
from decide.store.arrays import unpack
from decide.store.db import make_engine, migrate, sessions, writer_sessions
from decide.store.models import ConsumerOffset, Example, PendingJoin
from tests.conftest import _postgres_or_skip, fresh_postgres
from tests.kafka.broker import kafka_bootstrap, topic_prefix  # noqa: F401 (fixtures)

ACTIONS = [{"id": f"a{i}", "features": [{"colour": f"c{i % 3}", "size": i}]} for i in range(4)]


@pytest.fixture
def postgres_url() -> str:
    """PostgreSQL, the production database, for the tests that need concurrent writers."""
    url = _postgres_or_skip()
    fresh_postgres(url)
    return url


def events(count: int, loop: str, decided_at: float, seed: int = 7, prefix: str = "e") -> tuple[list[Decision], list[Reward]]:
    """Decisions over a small population and one reward each, inside every reasonable reward wait."""
    rng = np.random.default_rng(seed)
    decisions, rewards = [], []
    for number in range(count):
        decision = Decision(
            event_id=f"{prefix}{number}", loop=loop, timestamp=decided_at + number * 1e-4, policy_version=1,
            context=[{"user": {"segment": f"s{rng.integers(5)}", "x": float(rng.normal())}}],
            actions=ACTIONS, excluded=[], chosen=f"a{rng.integers(4)}", probabilities=[0.25] * 4,
        )
        decisions.append(decision)
        rewards.append(Reward(decision.event_id, float(rng.random() < 0.4), decision.timestamp + 0.5, loop=loop))
    return decisions, rewards


def one_pass_statistics(config: LoopConfig, decisions: list[Decision], rewards: list[Reward]) -> dict[str, np.ndarray]:
    """What learning every example once, in one batch, gives."""
    policy = make_policy(config.policy, config.featureDimension, config.policy_params())
    return policy.statistics(batch_of(config, decisions, [reward.value for reward in rewards]))


def assert_same_statistics(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert actual.keys() == expected.keys()
    for name in expected:
        assert np.allclose(actual[name], expected[name], rtol=1e-9, atol=1e-9), name


@dataclass
class Deployment:
    """One decide deployment on Kafka: its settings, database and event log, and its worker processes."""

    settings: Settings
    engine: Engine
    log: KafkaLog
    workdir: Path
    workers: list[subprocess.Popen] = field(default_factory=list)

    def create_loop(self, name: str, **config) -> LoopConfig:
        made = LoopConfig.from_json(config)
        with writer_sessions(self.engine).begin() as session:
            queries.create_loop(session, name, made)
        return made

    def produce(self, batch: list[Event]) -> None:
        """Many events fast: the API's producer settings, but without waiting for each acknowledgement."""
        producer = KafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
        for event in batch:
            producer.send(self.log.topic(stream_of(event)), key=event.event_id.encode(), value=encode(event).encode())
        producer.flush()
        producer.close()

    def environment(self, **extra: str) -> dict[str, str]:
        return os.environ | {
            "DECIDE_DATABASE_URL": self.settings.database_url,
            "DECIDE_EVENT_LOG": "kafka",
            "DECIDE_KAFKA_BOOTSTRAP": self.settings.kafka_bootstrap,
            "DECIDE_TOPIC_PREFIX": self.settings.topic_prefix,
            "DECIDE_PARTITIONS": str(self.settings.partitions),
            "DECIDE_SPOOL_PATH": self.settings.spool_path,
            **extra,
        }

    def start_worker(self, **extra: str) -> subprocess.Popen:
        """A real `decide worker` process; its log goes to worker-<n>.log in the test's directory."""
        with (self.workdir / f"worker-{len(self.workers)}.log").open("w") as output:
            worker = subprocess.Popen(
                [sys.executable, "-m", "decide", "worker"], env=self.environment(**extra), stdout=output, stderr=subprocess.STDOUT
            )
        self.workers.append(worker)
        return worker

    def consumed(self, stream: str) -> int:
        """Records of ``stream`` whose effect is committed in SQL (the sum of the stored offsets)."""
        with sessions(self.engine)() as session:
            return session.scalar(
                select(func.coalesce(func.sum(ConsumerOffset.next_offset), 0)).where(ConsumerOffset.stream == self.log.topic(stream))
            )

    def archived(self) -> list[str]:
        with sessions(self.engine)() as session:
            return list(session.scalars(select(Example.event_id)))

    def pending(self) -> int:
        with sessions(self.engine)() as session:
            return session.scalar(select(func.count()).select_from(PendingJoin))

    def learned(self, loop: str) -> tuple[dict[str, np.ndarray], int]:
        with sessions(self.engine)() as session:
            current = queries.current(session, loop)
            return unpack(current.statistics), current.examples_learned

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            for worker in self.workers:
                assert worker.poll() is None or worker.returncode < 0, f"a worker exited with {worker.returncode}: {self.logs()}"
            assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
            time.sleep(0.05)

    def logs(self) -> str:
        return "\n".join(path.read_text()[-3000:] for path in sorted(self.workdir.glob("worker-*.log")))


@pytest.fixture
def deployment(database_url: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Iterator[Deployment]:
    yield from _deployment(database_url, kafka_bootstrap, topic_prefix, tmp_path)


@pytest.fixture
def postgres_deployment(postgres_url: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Iterator[Deployment]:
    yield from _deployment(postgres_url, kafka_bootstrap, topic_prefix, tmp_path)


def _deployment(database_url: str, bootstrap: str, prefix: str, workdir: Path) -> Iterator[Deployment]:
    settings = Settings(
        database_url=database_url, event_log="kafka", kafka_bootstrap=bootstrap, topic_prefix=prefix,
        partitions=4, spool_path=str(workdir / "spool.db"),
    )
    migrate(database_url)
    engine = make_engine(database_url)
    with writer_sessions(engine).begin() as session:
        queries.ensure_loop(session, settings.default_loop)
    built = Deployment(settings, engine, KafkaLog(bootstrap, prefix, settings.partitions, STREAMS, settings.spool_path), workdir)
    yield built
    for worker in built.workers:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    built.log.close()
    engine.dispose()
