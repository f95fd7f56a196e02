"""The floor under one worker's cost per example: reading and parsing its two records, and nothing else.

    scripts/kafka.sh start
    python benchmarks/kafka_consume_ceiling.py --bootstrap 127.0.0.1:19092

Produces ``--events`` decisions and rewards shaped like pipeline_throughput.py's
to fresh topics, then reads them all back with a bare kafka-python consumer
(assigned partitions, no group, no processing) and parses them. Reported per
CPU-second of this process, since the broker shares the machine: records read,
examples (a decision and its reward) read, and the same with each record's JSON
parsed into an event. If the optional ``confluent-kafka`` package (librdkafka)
is installed, the bare read is measured with it too, for comparison; decide
itself uses kafka-python.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from collections.abc import Callable

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from tqdm import tqdm

from decide.events.schemas import Reward, decode, encode
from pipeline_throughput import decision


def produce(bootstrap: str, topics: tuple[str, str], args: argparse.Namespace) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20, batch_size=512 * 1024)
    rng = random.Random(args.seed)
    for _ in tqdm(range(args.events), desc="producing", unit="event", file=sys.stderr):
        made = decision(rng, "ceiling", time.time(), args.actions, args.context_features)
        reward = Reward(made.event_id, 1.0, made.timestamp + 0.01, loop="ceiling")
        producer.send(topics[0], key=made.event_id.encode(), value=encode(made).encode())
        producer.send(topics[1], key=made.event_id.encode(), value=encode(reward).encode())
    producer.flush()
    producer.close()


def read_with_kafka_python(bootstrap: str, topics: tuple[str, str], partitions: int, total: int, parse: bool) -> float:
    """CPU seconds to read (and optionally parse) every record once."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    consumer.assign([TopicPartition(topic, p) for topic in topics for p in range(partitions)])
    consumer.seek_to_beginning()
    started, count = time.process_time(), 0
    while count < total:
        for rows in consumer.poll(timeout_ms=1000, max_records=10_000).values():
            count += len(rows)
            if parse:
                for row in rows:
                    decode(row.value)
    spent = time.process_time() - started
    consumer.close()
    return spent


def read_with_librdkafka(bootstrap: str, topics: tuple[str, str], partitions: int, total: int) -> float | None:
    try:
        from confluent_kafka import Consumer, TopicPartition as RdTopicPartition
    except ImportError:
        return None
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"ceiling-{uuid.uuid4().hex}", "enable.auto.commit": False})
    consumer.assign([RdTopicPartition(topic, p, 0) for topic in topics for p in range(partitions)])
    started, count = time.process_time(), 0
    while count < total:
        for message in consumer.consume(num_messages=10_000, timeout=1.0):
            if message.error() is None:
                message.key(), message.value(), message.offset()
                count += 1
    spent = time.process_time() - started
    consumer.close()
    return spent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--actions", type=int, default=10)
    parser.add_argument("--context-features", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    prefix = f"ceiling-{uuid.uuid4().hex[:8]}."
    topics = (f"{prefix}decisions", f"{prefix}rewards")
    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap)
    admin.create_topics([NewTopic(topic, args.partitions, 1) for topic in topics])
    try:
        produce(args.bootstrap, topics, args)
        total = 2 * args.events
        readers: dict[str, Callable[[], float | None]] = {
            "kafka-python, read only": lambda: read_with_kafka_python(args.bootstrap, topics, args.partitions, total, parse=False),
            "kafka-python, read and parse": lambda: read_with_kafka_python(args.bootstrap, topics, args.partitions, total, parse=True),
            "confluent-kafka (librdkafka), read only": lambda: read_with_librdkafka(args.bootstrap, topics, args.partitions, total),
        }
        print(f"{args.events:,} decisions + {args.events:,} rewards, {args.partitions} partitions; median of {args.rounds} rounds")
        print("| reader | records per CPU-second | examples per CPU-second | µs per example |")
        print("|---|---|---|---|")
        for name, read in readers.items():
            spent = [read() for _ in range(args.rounds)]
            if spent[0] is None:
                print(f"| {name} | not installed | | |")
                continue
            median = sorted(spent)[len(spent) // 2]
            print(f"| {name} | {total / median:,.0f} | {args.events / median:,.0f} | {median / args.events * 1e6:.1f} |")
    finally:
        admin.delete_topics(list(topics))
        admin.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
