"""The Kafka event log: one topic per stream, consumer-group members, offsets kept in SQL.

Topics are ``<prefix><stream>`` with the same partition count, keyed by event
id; the producer's default partitioner (murmur2 of the key, modulo the count)
therefore puts a decision and its rewards in the same partition number, and the
range assignor gives the same partition numbers of both topics to the same
consumer, so the join stays partition-local.

Appends wait for the acknowledgement of all in-sync replicas. When the broker
does not acknowledge in time, the record goes to the local durable spool
instead (see ``spool``), and until the spool is empty again every later append
goes there too, so an API process's records reach Kafka in the order it
accepted them.

Consumers join the group ``<prefix><group>`` but never commit offsets to Kafka:
the pipeline keeps them in SQL with the state they produced and passes them to
``poll``, which seeks wherever they differ from the consumer's own position.
A record's stream is its topic's full name, so those SQL offsets can never be
mistaken for the embedded log's or another prefix's.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.producer.future import FutureRecordMetadata

from decide.errors import Invalid
from decide.events.log import EventLog, LogUnavailable, Position, Record, Subscription
from decide.events.spool import Drainer, Spool, SpooledRecord

log = logging.getLogger(__name__)

STARTUP_TIMEOUT = 10.0
"""Seconds to reach the cluster at start-up before giving up with a clear error."""
ACK_TIMEOUT = 2.0
"""Seconds an append waits for the broker's acknowledgement before spooling the record."""
FORWARD_TIMEOUT = 10.0
"""Seconds the drainer waits for a batch of spooled records to be acknowledged."""


class KafkaLog(EventLog):
    def __init__(
        self, bootstrap: str, prefix: str, partitions: int, streams: tuple[str, ...], spool_path: str, client_id: str = "decide"
    ) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.partitions = partitions
        self.client_id = client_id
        self._ensure_topics(streams)
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            client_id=client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=1,
            max_block_ms=int(ACK_TIMEOUT * 1000),
            request_timeout_ms=5000,
            delivery_timeout_ms=int(FORWARD_TIMEOUT * 1000),
            bootstrap_timeout_ms=int(STARTUP_TIMEOUT * 1000),
        )
        self._spool = Spool(spool_path)
        self._lock = threading.Lock()
        self._spooling = len(self._spool) > 0
        self._drainer = Drainer(self._spool, self._forward, self._spool_emptied)

    def topic(self, stream: str) -> str:
        return f"{self.prefix}{stream}"

    def _ensure_topics(self, streams: tuple[str, ...]) -> None:
        """Create missing topics; refuse topics whose partition count would break partition-local joins."""
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=self.bootstrap, client_id=self.client_id, bootstrap_timeout_ms=int(STARTUP_TIMEOUT * 1000)
            )
        except KafkaError as error:
            raise LogUnavailable(
                f"cannot reach Kafka at {self.bootstrap} ({error}); start the broker (scripts/kafka.sh start) "
                "or point DECIDE_KAFKA_BOOTSTRAP at a running cluster"
            ) from error
        try:
            topics = [self.topic(stream) for stream in streams]
            existing = {topic["name"]: len(topic["partitions"]) for topic in admin.describe_topics(topics) if topic["error_code"] == 0}
            wrong = {topic: count for topic, count in existing.items() if count != self.partitions}
            if wrong:
                found = ", ".join(f"{topic} has {count}" for topic, count in sorted(wrong.items()))
                raise Invalid(
                    f"the topics must all have DECIDE_PARTITIONS={self.partitions} partitions, but {found}",
                    field="DECIDE_PARTITIONS",
                    fix="set DECIDE_PARTITIONS to the topics' count (a decision and its rewards must share a partition number)",
                )
            missing = [topic for topic in topics if topic not in existing]
            if missing:
                replicas = min(3, len(admin.describe_cluster()["brokers"]))
                spec = {"num_partitions": self.partitions, "replication_factor": replicas, "configs": {"min.insync.replicas": str(max(1, replicas - 1))}}
                try:
                    admin.create_topics({topic: spec for topic in missing}, wait_for_metadata=True)
                    log.info("created topics %s with %d partitions and %d replicas", ", ".join(missing), self.partitions, replicas)
                except TopicAlreadyExistsError:
                    admin.wait_for_topics(missing)
        finally:
            admin.close()

    def append(self, stream: str, key: str, value: str) -> None:
        """Return once the brokers acknowledge the record, or once it is in the local spool."""
        if not self._spooling:
            try:
                self._send(stream, key, value).get(timeout=ACK_TIMEOUT)
                return
            except KafkaError as error:
                log.warning("Kafka did not acknowledge an event (%s); spooling events locally until it does", error)
        with self._lock:
            try:
                self._spool.append(stream, key, value)
            except (sqlite3.Error, OSError) as error:
                raise LogUnavailable(f"Kafka is unreachable and the local spool {self._spool.path} failed: {error}") from error
            self._spooling = True
        self._drainer.wake()

    def _send(self, stream: str, key: str, value: str) -> FutureRecordMetadata:
        return self._producer.send(self.topic(stream), key=key.encode(), value=value.encode())

    def _forward(self, records: list[SpooledRecord]) -> None:
        """The first record alone probes the broker: a batch queued while it is away would sit out the delivery timeout."""
        first, *rest = records
        try:
            self._send(first.stream, first.key, first.value).get(timeout=ACK_TIMEOUT)
            futures = [self._send(record.stream, record.key, record.value) for record in rest]
            for future in futures:
                future.get(timeout=FORWARD_TIMEOUT)
        except KafkaError as error:
            raise LogUnavailable(str(error)) from error

    def _spool_emptied(self) -> None:
        with self._lock:
            if self._spooling and len(self._spool) == 0:
                self._spooling = False
                log.info("the local spool is empty; events go straight to Kafka again")

    def subscribe(self, group: str, streams: tuple[str, ...]) -> Subscription:
        return KafkaSubscription(self, group, streams)

    def close(self) -> None:
        self._drainer.stop()
        self._producer.close(timeout=5)
        self._spool.close()


class KafkaSubscription(Subscription):
    """A consumer-group member whose positions come from the caller, never from Kafka's offset store."""

    def __init__(self, event_log: KafkaLog, group: str, streams: tuple[str, ...]) -> None:
        self._topics = sorted(event_log.topic(stream) for stream in streams)
        self._consumer = KafkaConsumer(
            bootstrap_servers=event_log.bootstrap,
            client_id=event_log.client_id,
            group_id=f"{event_log.prefix}{group}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            partition_assignment_strategy=[RangePartitionAssignor],
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
            bootstrap_timeout_ms=int(STARTUP_TIMEOUT * 1000),
        )
        self._generation = 0
        self._seen_generation = 0
        self._next: dict[TopicPartition, int | None] = {}
        # With the topics' metadata known before joining, the leader's first assignment is complete.
        for topic in self._topics:
            self._consumer.partitions_for_topic(topic)
        self._consumer.subscribe(topics=self._topics, listener=_Rebalance(self))

    def assignment(self) -> set[Position]:
        self._seen_generation = self._generation
        return {(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    def poll(self, positions: dict[Position, int], max_records: int, timeout: float) -> list[Record]:
        """Up to ``max_records`` already fetched, waiting up to ``timeout`` for the first.

        After a rebalance the caller's positions describe the old assignment, so
        nothing is returned until it has asked for the new one.
        """
        if self._generation != self._seen_generation:
            return []
        self._seek(positions)
        records: list[Record] = []
        wait_ms = int(timeout * 1000)
        while len(records) < max_records:
            fetched = self._consumer.poll(timeout_ms=wait_ms, max_records=max_records - len(records))
            if self._generation != self._seen_generation:
                return []
            if not fetched:
                break
            for tp, rows in fetched.items():
                records.extend(Record(tp.topic, tp.partition, row.offset, row.key.decode(), row.value.decode()) for row in rows)
                self._next[tp] = rows[-1].offset + 1
            wait_ms = 0
        return records

    def _seek(self, positions: dict[Position, int]) -> None:
        for tp in self._consumer.assignment():
            wanted = positions.get((tp.topic, tp.partition))
            if tp in self._next and self._next[tp] == wanted:
                continue
            if wanted is None:
                self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, wanted)
            self._next[tp] = wanted

    def caught_up(self, positions: dict[Position, int]) -> set[Position]:
        """While the broker cannot say, none: joins then close by the event time read so far."""
        owned = list(self._consumer.assignment())
        absent = [tp for tp in owned if (tp.topic, tp.partition) not in positions]
        try:
            ends = self._consumer.end_offsets(owned, int(ACK_TIMEOUT * 1000))
            starts = self._consumer.beginning_offsets(absent, int(ACK_TIMEOUT * 1000)) if absent else {}
        except KafkaError as error:
            log.debug("no end offsets from Kafka (%s); closing joins by event time only", error)
            return set()
        return {
            (tp.topic, tp.partition)
            for tp in owned
            if positions.get((tp.topic, tp.partition), starts.get(tp, 0)) >= ends[tp]
        }

    def _reassigned(self) -> None:
        self._generation += 1
        self._next.clear()

    def close(self) -> None:
        """Leave the group at once, so the other members take over without waiting for a timeout."""
        self._consumer.close(autocommit=False)


class _Rebalance(ConsumerRebalanceListener):
    """Nothing to commit on revocation (offsets live in SQL); any change invalidates the caller's positions."""

    def __init__(self, subscription: KafkaSubscription) -> None:
        self.subscription = subscription

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.subscription._reassigned()

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.subscription._reassigned()
