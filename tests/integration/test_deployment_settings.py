"""``DECIDE_*`` deployment settings that change behaviour, each through the path it acts on.

Every test here fails when decide ignores the setting it is about: it compares the
setting's effect with the default's. docs/settings-coverage.md lists the mutation
each was checked against, and the existing tests that cover the other settings.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

import pytest
from sqlalchemy import func, select

from decide.store.models import LogRecord, PendingJoin
from tests.conftest import make_service
from tests.e2e.conftest import free_port

ACTIONS = [{"id": "a"}, {"id": "b"}, {"id": "c"}]


@pytest.fixture
def services(database_url):
    """``services(**settings)``: a service over the test database with these settings (one per test: each migrates the same database)."""
    built = []

    def build(**overrides):
        built.append(make_service(database_url, **overrides))
        return built[-1]

    yield build
    for service in built:
        service.worker.close()
        service.engine.dispose()


def rank(service, loop: str | None = None, actions=ACTIONS, **extra):
    return service.client.post("/rank", json={**({"loop": loop} if loop else {}), "actions": actions, **extra})


def test_max_actions_refuses_one_more_action_naming_the_variable(services):
    service = services(max_actions=3)
    assert rank(service, actions=ACTIONS).status_code == 201
    refused = rank(service, actions=[*ACTIONS, {"id": "d"}])
    assert refused.status_code == 400 and refused.json["field"] == "actions"
    assert "limit of 3" in refused.json["detail"] and "DECIDE_MAX_ACTIONS" in refused.json["detail"]


def test_max_body_bytes_refuses_a_larger_body_with_413(services):
    service = services(max_body_bytes=2048)
    small = {"contextFeatures": [{"note": "x" * 1000}]}
    large = {"contextFeatures": [{"note": "x" * 3000}]}
    assert rank(service, **small).status_code == 201
    refused = rank(service, **large)
    assert refused.status_code == 413 and "2048 bytes" in refused.json["detail"]


def test_the_default_loop_is_the_one_a_request_without_loop_uses_and_readiness_needs(services):
    service = services(default_loop="main")
    answer = rank(service)
    assert answer.status_code == 201
    assert service.client.post("/reward", json={"eventId": answer.json["eventId"], "value": 1.0}).status_code == 202
    service.client.patch("/loops/main/config", json={"rewardWaitTime": 5, "updateInterval": 0.01})
    service.advance(10)
    service.learn_all()
    assert service.client.get("/loops/main").json["examplesLearned"] == 1
    assert service.client.get("/loops/default").status_code == 404, "make_service creates only the configured default loop"
    service.create_loop("default")
    assert service.client.delete("/loops/main").status_code == 204
    missing = service.client.get("/readyz")
    assert missing.status_code == 503 and "'main'" in missing.json["detail"]


def test_poll_interval_is_how_long_an_api_worker_serves_a_version_before_looking_for_a_newer_one(services):
    """With a poll interval of a minute (the most), the API keeps serving version 1 of a loop it has served; with 0 it serves the new one."""
    served = {}
    for name, interval in (("slow", 60.0), ("always", 0.0)):
        service = services(poll_interval=interval)
        service.create_loop(name, rewardWaitTime=5, updateInterval=0.01)
        answer = rank(service, name)
        assert answer.json["policyVersion"] == 1
        assert service.client.post("/reward", json={"eventId": answer.json["eventId"], "value": 1.0}).status_code == 202
        service.advance(10)
        service.learn_all()
        assert service.client.get(f"/loops/{name}").json["currentVersion"] == 2
        served[name] = rank(service, name).json["policyVersion"]
    assert served == {"slow": 1, "always": 2}


def test_join_grace_holds_a_join_open_past_its_window(services):
    """rewardWaitTime 5: 10 s later a worker with no grace has learned the decision; one with 30 s grace has not, until 40 s."""
    learned = {}
    for grace in (0.0, 30.0):
        service = services(join_grace=grace)
        loop = f"grace{int(grace)}"
        service.create_loop(loop, rewardWaitTime=5, updateInterval=0.01)
        assert service.client.post("/reward", json={"eventId": rank(service, loop).json["eventId"], "value": 1.0}).status_code == 202
        service.advance(10)
        service.learn_all()
        learned[grace] = [service.client.get(f"/loops/{loop}").json["examplesLearned"]]
        service.advance(30)
        service.learn_all()
        learned[grace].append(service.client.get(f"/loops/{loop}").json["examplesLearned"])
    assert learned == {0.0: [1, 1], 30.0: [0, 1]}


def test_join_spill_after_is_how_long_an_open_join_stays_only_in_the_workers_memory(services):
    spilled = {}
    for spill_after in (0.0, 3600.0):
        service = services(join_spill_after=spill_after)
        loop = f"spill{int(spill_after)}"
        service.create_loop(loop, rewardWaitTime=600, updateInterval=0.01)
        for _ in range(3):
            rank(service, loop)
        time.sleep(0.01)  # the joins' first records are now older than a spill time of 0
        service.learn_all()
        with service.app.extensions["decide"].sessions() as session:
            spilled[spill_after] = session.scalar(select(func.count()).select_from(PendingJoin))
        service.advance(700)
        service.learn_all()
        assert service.client.get(f"/loops/{loop}").json["examplesLearned"] == 3
    assert spilled == {0.0: 3, 3600.0: 0}


def test_partitions_is_how_many_partitions_the_embedded_log_spreads_events_over(services):
    used = {}
    for partitions in (2, 4):
        service = services(partitions=partitions)
        loop = f"p{partitions}"
        service.create_loop(loop, rewardWaitTime=5, updateInterval=0.01)
        for _ in range(40):
            answer = rank(service, loop)
            assert service.client.post("/reward", json={"eventId": answer.json["eventId"], "value": 1.0}).status_code == 202
        service.advance(10)
        service.learn_all()
        assert service.client.get(f"/loops/{loop}").json["examplesLearned"] == 40
        with service.app.extensions["decide"].sessions() as session:
            used[partitions] = set(session.scalars(select(LogRecord.partition).distinct()))
        with service.engine.begin() as connection:
            connection.execute(LogRecord.__table__.delete())
    assert used == {2: {0, 1}, 4: {0, 1, 2, 3}}


def test_worker_interval_spaces_a_caught_up_workers_cycles(services):
    spacing = {}
    for interval in (0.0, 1.0):
        service = services(worker_interval=interval)
        ended: list[float] = []
        service.worker.run(lambda: len(ended) >= 3, lambda result: ended.append(time.monotonic()))
        spacing[interval] = min(later - earlier for earlier, later in zip(ended, ended[1:]))
    assert spacing[1.0] >= 1.0
    assert spacing[0.0] < 0.9


def test_worker_metrics_port_serves_prometheus_text(tmp_path):
    """``DECIDE_WORKER_METRICS_PORT`` and ``decide worker --metrics-port``: the worker's metrics at 127.0.0.1:<port>/metrics."""
    database_url = f"sqlite:///{tmp_path / 'decide.db'}"
    environment = os.environ | {"DECIDE_DATABASE_URL": database_url}
    subprocess.run([sys.executable, "-m", "decide", "migrate"], env=environment, check=True, capture_output=True)
    for options, extra in (([], "DECIDE_WORKER_METRICS_PORT"), (["--metrics-port"], None)):
        port = free_port()
        command = [sys.executable, "-m", "decide", "worker", *(options + [str(port)] if options else [])]
        worker = subprocess.Popen(command, env=environment | ({extra: str(port)} if extra else {}), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            text = _metrics(port, worker)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
        assert "# TYPE decide_pipeline_records_total counter" in text and "decide_pipeline_records_total 0.0" in text, text[:2000]


def _metrics(port: int, process: subprocess.Popen, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"decide worker exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
                assert answer.headers["Content-Type"].startswith("text/plain")
                return answer.read().decode()
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing served metrics on 127.0.0.1:{port}")


def test_the_kafka_event_log_is_used_when_chosen_at_the_bootstrap_given(tmp_path):
    """``DECIDE_EVENT_LOG=kafka`` and ``DECIDE_KAFKA_BOOTSTRAP``: with no broker at the given address, the worker stops saying so."""
    pytest.importorskip("kafka")
    database_url = f"sqlite:///{tmp_path / 'decide.db'}"
    environment = os.environ | {"DECIDE_DATABASE_URL": database_url}
    subprocess.run([sys.executable, "-m", "decide", "migrate"], env=environment, check=True, capture_output=True)
    nowhere = f"127.0.0.1:{free_port()}"
    environment |= {"DECIDE_EVENT_LOG": "kafka", "DECIDE_KAFKA_BOOTSTRAP": nowhere, "DECIDE_SPOOL_PATH": str(tmp_path / "spool.db")}
    done = subprocess.run([sys.executable, "-m", "decide", "worker"], env=environment, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and f"cannot reach Kafka at {nowhere}" in done.stderr + done.stdout
