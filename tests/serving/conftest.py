"""Real backend processes for the serving tests: a supervisor over an app's database, or one backend alone.

Socket directories are made under /tmp with short names, because a Unix socket
path must fit in about 100 bytes; backends get the repository on PYTHONPATH so
they can import the test models in ``tests/serving/models.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from decide.events.schemas import DECISIONS, Decision, decode
from decide.serving.backend import spawn
from decide.serving.client import Backends
from decide.serving.protocol import socket_path
from decide.serving.spec import ModelSpec
from decide.serving.supervisor import Supervisor
from decide.store.db import sessions
from decide.store.models import LogRecord
from tests.conftest import Service, make_service

ROOT = Path(__file__).resolve().parents[2]


def model_environment() -> dict[str, str]:
    return os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def decisions(service: Service) -> dict[str, Decision]:
    """The decision log of ``service``, by event id."""
    with service.app.extensions["decide"].sessions() as session:
        rows = session.scalars(select(LogRecord.value).where(LogRecord.stream == DECISIONS))
        return {event.event_id: event for event in map(decode, rows)}


@pytest.fixture
def backend_dir() -> Iterator[str]:
    directory = tempfile.mkdtemp(prefix="dcd-")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@dataclass
class ModelService:
    """An app with model backends run by a real supervisor (in a thread of the test process)."""

    service: Service
    supervisor: Supervisor

    def register(self, name: str, **spec: Any) -> dict[str, Any]:
        response = self.service.client.post("/models", json={"name": name, **spec})
        assert response.status_code == 201, response.json
        return response.json

    def wait_up(self, name: str, version: int = 1, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until every replica of ``name`` answers, at ``version``; their reports."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            backends = self.service.client.get(f"/models/{name}").json["backends"]
            if all(backend["up"] and backend["version"] == version for backend in backends):
                return backends
            time.sleep(0.05)
        raise TimeoutError(f"model {name} version {version} did not come up: {backends}")

    def rank(self, loop: str, models: list[str], context: Any = None, **body: Any) -> dict[str, Any]:
        response = self.service.client.post(
            "/rank", json={"loop": loop, "contextFeatures": context or [], "actions": [{"id": m} for m in models], **body}
        )
        assert response.status_code == 201, response.json
        return response.json


@pytest.fixture
def models_service(tmp_path, backend_dir) -> Iterator[ModelService]:
    service = make_service(f"sqlite:///{tmp_path / 'decide.db'}", backend_dir=backend_dir)
    supervisor = Supervisor(sessions(service.engine), backend_dir, interval=0.1, environment=model_environment())
    stopping = threading.Event()
    thread = threading.Thread(target=supervisor.run, args=(stopping.is_set,), daemon=True)
    thread.start()
    try:
        yield ModelService(service, supervisor)
    finally:
        stopping.set()
        thread.join(timeout=30)
        service.app.extensions["decide"].decider.models.backends.close()
        service.worker.close()
        service.engine.dispose()


@dataclass
class Backend:
    """One backend process started directly, and a client for it."""

    name: str
    process: subprocess.Popen
    client: Backends

    def call(self, input: Any, budget: float, **options: Any):
        return self.client.call(self.name, 1, {"x": input, "b": budget}, budget, **options)

    def status(self) -> dict[str, Any]:
        (report,) = self.client.status(self.name, 1, timeout=2.0)
        assert report is not None, "the backend does not answer"
        return report


@pytest.fixture
def start_backend(backend_dir) -> Iterator:
    started: list[Backend] = []

    def start(name: str, **spec: Any) -> Backend:
        path = socket_path(backend_dir, name, 0)
        process = spawn(name, 1, ModelSpec(**spec), path, model_environment())
        deadline = time.monotonic() + 30
        while not os.path.exists(path):
            assert process.poll() is None and time.monotonic() < deadline, "the backend did not start"
            time.sleep(0.02)
        backend = Backend(name, process, Backends(backend_dir))
        started.append(backend)
        return backend

    yield start
    for backend in started:
        backend.client.close()
        backend.process.kill()
        backend.process.wait()
