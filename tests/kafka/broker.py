"""The real Kafka broker for the test suite, and helpers to stop and start it.

``DECIDE_TEST_KAFKA_BOOTSTRAP`` names a broker to use (``scripts/test.sh`` starts
one with ``scripts/kafka.sh`` and sets it). Without it, the session starts a
broker with ``scripts/kafka.sh`` and stops it at the end (unless it was already
running). If no broker can be had the Kafka tests are skipped, unless
``DECIDE_REQUIRE_KAFKA=1`` (as in CI), where that is a failure.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "kafka.sh"


def _unavailable(reason: str) -> None:
    if os.environ.get("DECIDE_REQUIRE_KAFKA") == "1":
        pytest.fail(f"DECIDE_REQUIRE_KAFKA=1 but {reason}")
    pytest.skip(f"no Kafka broker: {reason}")


def broker_environment(bootstrap: str) -> dict[str, str]:
    """Environment for scripts/kafka.sh to act on the broker at ``bootstrap`` (its port)."""
    return os.environ | {"DECIDE_KAFKA_PORT": bootstrap.rpartition(":")[2]}


def kafka_script(bootstrap: str, *arguments: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SCRIPT), *arguments], env=broker_environment(bootstrap), capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    given = os.environ.get("DECIDE_TEST_KAFKA_BOOTSTRAP")
    if given:
        yield given
        return
    default = f"127.0.0.1:{os.environ.get('DECIDE_KAFKA_PORT', '19092')}"
    already_running = kafka_script(default, "status").returncode == 0
    try:
        started = kafka_script(default, "start")
    except (OSError, subprocess.TimeoutExpired) as error:
        _unavailable(f"scripts/kafka.sh start failed: {error}")
    if started.returncode != 0:
        _unavailable(f"scripts/kafka.sh start failed:\n{started.stderr[-2000:]}")
    yield started.stdout.strip().splitlines()[-1]
    if not already_running:
        kafka_script(default, "stop")


@pytest.fixture
def topic_prefix() -> str:
    """Topics (and the consumer group) of one test, isolated from every other test's."""
    return f"test-{uuid.uuid4().hex[:10]}."
