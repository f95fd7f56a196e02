"""Real backend processes for the serving tests.

Socket directories are made under /tmp with short names, because a Unix socket
path must fit in about 100 bytes; backends get the repository on PYTHONPATH so
they can import the test models in ``tests/serving/models.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from decide.serving.backend import spawn
from decide.serving.client import Backends
from decide.serving.protocol import socket_path
from decide.serving.spec import ModelSpec

ROOT = Path(__file__).resolve().parents[2]


def model_environment() -> dict[str, str]:
    return os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


@pytest.fixture
def backend_dir() -> Iterator[str]:
    directory = tempfile.mkdtemp(prefix="dcd-")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@dataclass
class Backend:
    """One backend process started directly, and a client for it."""

    name: str
    process: subprocess.Popen
    client: Backends

    def call(self, input: Any, budget: float, **options: Any):
        return self.client.call(self.name, 1, {"x": input, "b": budget}, **options)

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
