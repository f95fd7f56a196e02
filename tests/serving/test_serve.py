"""``decide serve`` runs the registered models' backends beside gunicorn, and stops them with itself."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np

from decide.client import Client
from decide.features import flatten
from simulations.model_routing import INPUTS, ModelRoutingPopulation, small
from tests.e2e.conftest import free_port, stop, wait_ready


def expected_prediction(context: list) -> int:
    row = np.zeros((1, len(INPUTS)))
    for name, value in flatten(context):
        if name in INPUTS:
            row[0, INPUTS.index(name)] += value
    return int(small.predict(row)[0])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_serve_starts_serves_and_stops_the_model_backends(tmp_path):
    port = free_port()
    environment = os.environ | {"DECIDE_DATABASE_URL": f"sqlite:///{tmp_path / 'decide.db'}", "DECIDE_PORT": str(port)}
    process = subprocess.Popen([sys.executable, "-m", "decide", "serve", "--no-learner"], env=environment, start_new_session=True)
    client = Client(f"http://127.0.0.1:{port}")
    try:
        wait_ready(client, process)
        spec = {"name": "small", "target": "simulations.model_routing:small", "inputs": INPUTS, "replicas": 2, "deadlineMs": 2000}
        client.request("POST", "/models", spec)
        deadline = time.monotonic() + 30
        backends = client.request("GET", "/models/small")["backends"]
        while not all(backend["up"] for backend in backends):
            assert time.monotonic() < deadline, backends
            time.sleep(0.1)
            backends = client.request("GET", "/models/small")["backends"]
        client.request("POST", "/loops", {"name": "routing", "config": {"models": ["small"]}})
        population = ModelRoutingPopulation(seed=1)
        for _ in range(20):
            task = population.next_task()
            answer = client.rank(task.context, [{"id": "small"}], loop="routing")
            assert answer["prediction"] == expected_prediction(task.context) and "fallback" not in answer
        client.connection.request("GET", "/metrics")
        metrics = client.connection.getresponse().read().decode()
        assert 'decide_model_requests_total{model="small",outcome="answered"} 20.0' in metrics
        while 'decide_model_backends_up{model="small"} 2.0' not in metrics:
            assert time.monotonic() < deadline, "the supervisor's health checks show in /metrics"
            time.sleep(0.2)
            client.connection.request("GET", "/metrics")
            metrics = client.connection.getresponse().read().decode()
    finally:
        client.close()
        stop(process)
    time.sleep(0.5)
    assert not any(alive(backend["pid"]) for backend in backends), "stopping decide serve stops its backends"
