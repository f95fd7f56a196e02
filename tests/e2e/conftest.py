"""A real ``decide serve`` (gunicorn + learner) on a free loopback port, per test."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from decide.client import ApiError, Client


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_ready(client: Client, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"decide serve exited with {process.returncode}")
        try:
            client.request("GET", "/readyz")
            return
        except (ApiError, OSError):
            client.close()
            time.sleep(0.2)
    raise TimeoutError("decide serve did not become ready")


@pytest.fixture
def served(database_url: str) -> Iterator[Client]:
    port = free_port()
    environment = os.environ | {"DECIDE_DATABASE_URL": database_url, "DECIDE_PORT": str(port), "DECIDE_JOIN_GRACE": "0.2"}
    process = subprocess.Popen([sys.executable, "-m", "decide", "serve"], env=environment, start_new_session=True)
    client = Client(f"http://127.0.0.1:{port}")
    try:
        wait_ready(client, process)
        yield client
    finally:
        client.close()
        stop(process)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM ``decide serve`` and wait; a server that does not stop is killed and fails the test."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
