"""Start-up on Kafka: a broker that cannot be reached, and topics that would break partition-local joins."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from decide.errors import Invalid
from decide.events.kafka import KafkaLog
from decide.events.schemas import STREAMS
from tests.e2e.conftest import free_port


def test_an_unreachable_broker_stops_the_worker_with_a_message(tmp_path):
    bootstrap = f"127.0.0.1:{free_port()}"
    environment = os.environ | {
        "DECIDE_DATABASE_URL": f"sqlite:///{tmp_path / 'decide.db'}", "DECIDE_EVENT_LOG": "kafka",
        "DECIDE_KAFKA_BOOTSTRAP": bootstrap, "DECIDE_SPOOL_PATH": str(tmp_path / "spool.db"),
    }
    subprocess.run([sys.executable, "-m", "decide", "migrate"], env=environment, check=True, capture_output=True, timeout=60)
    finished = subprocess.run([sys.executable, "-m", "decide", "worker"], env=environment, capture_output=True, text=True, timeout=60)
    assert finished.returncode == 1
    assert f"Error: cannot reach Kafka at {bootstrap}" in finished.stderr
    assert "Traceback" not in finished.stderr


def test_topics_with_another_partition_count_are_refused(kafka_bootstrap, topic_prefix, tmp_path):
    KafkaLog(kafka_bootstrap, topic_prefix, 4, STREAMS, str(tmp_path / "spool.db")).close()
    with pytest.raises(Invalid, match=r"DECIDE_PARTITIONS=8 .* has 4") as refused:
        KafkaLog(kafka_bootstrap, topic_prefix, 8, STREAMS, str(tmp_path / "spool.db"))
    assert refused.value.field == "DECIDE_PARTITIONS"
