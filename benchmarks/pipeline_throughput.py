"""Pipeline throughput and freshness of one ``decide worker`` on a real Kafka broker and PostgreSQL.

    scripts/kafka.sh start && scripts/postgres.sh start
    python benchmarks/pipeline_throughput.py --database-url postgresql://decide@127.0.0.1:55432/decide

Everything runs in a temporary database (created next to the one named, dropped
at the end) and on topics with a fresh prefix, so nothing existing is touched.

1. Throughput. ``--events`` decisions, each followed by its reward, are
   produced to Kafka (requests shaped like benchmarks/api_load.py's: 10
   actions, 20 context features). Then one ``decide worker`` starts and
   consumes the backlog: it joins, archives, learns and commits offsets in
   PostgreSQL. Reported: examples learned per second, from the worker's first
   committed cycle to the moment ``examples_learned`` reaches the event count
   (the producer's own rate is shown too, but not charged to the worker).
2. Freshness. A second loop with a short ``--reward-wait`` gets a steady
   stream of decisions and rewards through ``KafkaLog.append`` (the API's path,
   acknowledged by all in-sync replicas). For every reward: the time from its
   acknowledgement to the moment a policy cache (the API's own, polling every
   ``poll_interval``) serves a version that includes it. The version is read
   when the example is first seen learned, so it is never earlier than the
   including one: the numbers err on the slow side.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kafka import KafkaProducer
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from api_load import actions, context_features, machine
from decide.api.policy_cache import PolicyCache
from decide.config import LoopConfig, Settings
from decide.events.kafka import KafkaLog
from decide.events.schemas import DECISIONS, REWARDS, STREAMS, Decision, Reward, encode
from decide.store import queries
from decide.store.db import make_engine, migrate, sessions, writer_sessions
from decide.store.models import ConsumerOffset, Example

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far: less sensitive to a busy machine than wall time."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@contextmanager
def temporary_database(url: str) -> Iterator[str]:
    """A fresh PostgreSQL database beside ``url``'s (or a temporary SQLite file), dropped afterwards."""
    if url.startswith("sqlite"):
        with tempfile.TemporaryDirectory(prefix="decide-bench-") as directory:
            yield f"sqlite:///{directory}/bench.db"
        return
    name = f"decide_bench_{uuid.uuid4().hex[:8]}"
    admin = make_engine(url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def decision(rng: random.Random, loop: str, timestamp: float, n_actions: int, n_context: int) -> Decision:
    candidates = actions(rng, n_actions)
    return Decision(
        event_id=uuid.uuid4().hex, loop=loop, timestamp=timestamp, policy_version=1,
        context=context_features(rng, n_context), actions=candidates, excluded=[],
        chosen=rng.choice(candidates)["id"], probabilities=[1.0 / n_actions] * n_actions,
    )


def produce_backlog(settings: Settings, loop: str, args: argparse.Namespace) -> float:
    """Produce the throughput phase's events as fast as one producer can; returns records per second."""
    rng = random.Random(args.seed)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=20, batch_size=512 * 1024)
    started = time.perf_counter()
    for _ in range(args.events):
        made = decision(rng, loop, time.time(), args.actions, args.context_features)
        reward = Reward(made.event_id, float(rng.random() < 0.3), made.timestamp + 0.01, loop=loop)
        key = made.event_id.encode()
        producer.send(f"{settings.topic_prefix}{DECISIONS}", key=key, value=encode(made).encode())
        producer.send(f"{settings.topic_prefix}{REWARDS}", key=key, value=encode(reward).encode())
    producer.flush()
    elapsed = time.perf_counter() - started
    producer.close()
    return 2 * args.events / elapsed


def start_worker(settings: Settings, log_path: Path) -> subprocess.Popen:
    environment = os.environ | {
        "DECIDE_DATABASE_URL": settings.database_url,
        "DECIDE_EVENT_LOG": "kafka",
        "DECIDE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "DECIDE_TOPIC_PREFIX": settings.topic_prefix,
        "DECIDE_PARTITIONS": str(settings.partitions),
        "DECIDE_SPOOL_PATH": settings.spool_path,
        "PYTHONPATH": str(ROOT),
    }
    with log_path.open("w") as output:
        return subprocess.Popen([sys.executable, "-m", "decide", "worker"], env=environment, stdout=output, stderr=subprocess.STDOUT)


def throughput(settings: Settings, args: argparse.Namespace, workdir: Path) -> dict:
    engine = make_engine(settings.database_url)
    with writer_sessions(engine).begin() as session:
        queries.create_loop(session, "throughput", LoopConfig.from_json({"rewardWaitTime": 1.0, "updateInterval": 0.5}))
    produced = produce_backlog(settings, "throughput", args)
    print(f"  produced {args.events} decisions + rewards at {produced:,.0f} records/s", file=sys.stderr)
    worker = start_worker(settings, workdir / "worker.log")
    readers = sessions(engine)
    first = None
    deadline = time.monotonic() + args.timeout
    try:
        while time.monotonic() < deadline:
            with readers() as session:
                consumed = session.scalar(select(func.coalesce(func.sum(ConsumerOffset.read_offset), 0)))
                learned = queries.current(session, "throughput").examples_learned
            now = time.perf_counter()
            if first is None and consumed:
                first = (now, learned, cpu_seconds(worker.pid))
            if learned >= args.events:
                cpu = cpu_seconds(worker.pid) - first[2]
                break
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited with {worker.returncode}; see {workdir / 'worker.log'}")
            time.sleep(0.05)
        else:
            raise TimeoutError(f"only {learned} of {args.events} examples learned after {args.timeout:.0f}s")
        with readers() as session:
            reasons = dict(session.execute(select(Example.reason, func.count()).group_by(Example.reason)).all())
    except BaseException:
        worker.kill()
        raise
    elapsed = now - first[0]
    rate = (learned - first[1]) / elapsed
    per_cpu = (learned - first[1]) / cpu
    print(
        f"  worker learned {learned:,} examples in {elapsed:.2f}s: {rate:,.0f} examples/s "
        f"({per_cpu:,.0f} per CPU-second of the worker); joins closed {reasons}",
        file=sys.stderr,
    )
    engine.dispose()
    return {
        "worker": worker, "producer_records_per_s": produced, "examples_per_s": rate, "examples_per_worker_cpu_s": per_cpu,
        "seconds": elapsed, "reasons": reasons,
    }


def freshness(settings: Settings, args: argparse.Namespace) -> dict:
    engine = make_engine(settings.database_url)
    config = {"rewardWaitTime": args.reward_wait, "updateInterval": 0.1}
    with writer_sessions(engine).begin() as session:
        queries.create_loop(session, "fresh", LoopConfig.from_json(config))
    readers = sessions(engine)
    cache = PolicyCache(readers, settings.poll_interval)
    served_at: dict[int, float] = {}
    accepted: dict[str, float] = {}
    waiting_for: dict[str, int] = {}
    stop = threading.Event()

    def serve() -> None:
        """Ask for the policy as an API worker under load would, and note when each version is first served."""
        while not stop.is_set():
            version = cache.get("fresh").version
            served_at.setdefault(version, time.time())
            time.sleep(0.005)

    def watch() -> None:
        """Note, for each accepted reward, the current version once its example is learned."""
        while not stop.is_set():
            pending = [event_id for event_id in list(accepted) if event_id not in waiting_for]
            if pending:
                with readers() as session:
                    learned = session.scalars(select(Example.event_id).where(Example.event_id.in_(pending), Example.learned.is_(True))).all()
                    version = queries.current(session, "fresh").version if learned else 0
                waiting_for.update({event_id: version for event_id in learned})
            time.sleep(0.02)

    log = KafkaLog(settings.kafka_bootstrap, settings.topic_prefix, settings.partitions, STREAMS, settings.spool_path)
    rng = random.Random(args.seed + 1)
    threads = [threading.Thread(target=serve, daemon=True), threading.Thread(target=watch, daemon=True)]
    for thread in threads:
        thread.start()
    interval = 1.0 / args.rate
    started = time.monotonic()
    next_at = started
    while time.monotonic() - started < args.duration:
        made = decision(rng, "fresh", time.time(), args.actions, args.context_features)
        log.append(DECISIONS, made.event_id, encode(made))
        log.append(REWARDS, made.event_id, encode(Reward(made.event_id, float(rng.random() < 0.3), time.time(), loop="fresh")))
        accepted[made.event_id] = time.time()
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))
    drain_deadline = time.monotonic() + args.reward_wait + 15
    while len(waiting_for) < len(accepted) and time.monotonic() < drain_deadline:
        time.sleep(0.1)
    time.sleep(settings.poll_interval + 0.1)
    stop.set()
    for thread in threads:
        thread.join(timeout=5)
    log.close()
    engine.dispose()
    delays = sorted(
        min(at for version, at in served_at.items() if version >= waiting_for[event_id]) - accepted[event_id]
        for event_id in accepted
        if event_id in waiting_for and any(version >= waiting_for[event_id] for version in served_at)
    )
    if len(delays) < len(accepted):
        raise RuntimeError(f"only {len(delays)} of {len(accepted)} rewards were seen served")
    p50, p99 = delays[len(delays) // 2], delays[min(len(delays) - 1, int(0.99 * len(delays)))]
    print(
        f"  freshness over {len(delays)} rewards (rewardWaitTime {args.reward_wait}s): p50 {p50:.2f}s, p99 {p99:.2f}s "
        f"= wait + {p50 - args.reward_wait:.2f}s / + {p99 - args.reward_wait:.2f}s",
        file=sys.stderr,
    )
    return {"rewards": len(delays), "p50_s": p50, "p99_s": p99, "p50_beyond_wait_s": p50 - args.reward_wait, "p99_beyond_wait_s": p99 - args.reward_wait}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("DECIDE_TEST_POSTGRES_URL", "postgresql://decide@127.0.0.1:55432/decide"))
    parser.add_argument("--bootstrap", default=os.environ.get("DECIDE_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:19092"))
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--events", type=int, default=50_000, help="decisions (each with a reward) in the throughput backlog")
    parser.add_argument("--actions", type=int, default=10)
    parser.add_argument("--context-features", type=int, default=20)
    parser.add_argument("--reward-wait", type=float, default=1.0, help="the freshness loop's rewardWaitTime, seconds")
    parser.add_argument("--rate", type=float, default=100.0, help="decision + reward pairs per second in the freshness phase")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of steady load in the freshness phase")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"pipeline benchmark: {machine()}; Kafka {args.bootstrap}, {args.partitions} partitions", file=sys.stderr)
    with temporary_database(args.database_url) as url, tempfile.TemporaryDirectory(prefix="decide-bench-") as directory:
        workdir = Path(directory)
        settings = Settings(
            database_url=url, event_log="kafka", kafka_bootstrap=args.bootstrap, topic_prefix=f"bench-{uuid.uuid4().hex[:8]}.",
            partitions=args.partitions, spool_path=str(workdir / "spool.db"),
        )
        migrate(url)
        KafkaLog(settings.kafka_bootstrap, settings.topic_prefix, settings.partitions, STREAMS, settings.spool_path).close()
        measured = throughput(settings, args, workdir)
        worker = measured.pop("worker")
        try:
            measured["freshness"] = freshness(settings, args)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
    if args.json:
        args.json.write_text(json.dumps({"arguments": {k: str(v) for k, v in vars(args).items()}, "machine": machine(), **measured}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
