"""A backend that dies, hangs or runs out of memory never takes /rank down: labelled fallbacks, then a restart."""

from __future__ import annotations

import os
import signal
import threading
import time

from tests.serving.conftest import decisions


def pid_of(models_service, name: str) -> int | None:
    (backend,) = models_service.service.client.get(f"/models/{name}").json["backends"]
    return backend.get("pid")


def wait_for_new_pid(models_service, name: str, old: int, timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = pid_of(models_service, name)
        if pid not in (None, old):
            return pid
        time.sleep(0.05)
    raise TimeoutError(f"{name} was not restarted")


def test_a_backend_killed_under_load_is_restarted_while_rank_answers_with_labelled_fallbacks(models_service):
    models_service.register("primary", target="tests.serving.models:misbehave", fallback="backup", deadlineMs=1000)
    models_service.register("backup", target="tests.serving.models:constant")
    models_service.wait_up("primary")
    models_service.wait_up("backup")
    models_service.service.create_loop("guarded", models=["primary"])
    client = models_service.service.app.test_client()
    answers: list[dict] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            response = client.post("/rank", json={"loop": "guarded", "actions": [{"id": "primary"}]})
            answers.append(response.json | {"status": response.status_code})

    loader = threading.Thread(target=load)
    loader.start()
    time.sleep(0.5)
    old = pid_of(models_service, "primary")
    os.kill(old, signal.SIGKILL)
    killed_at = len(answers)
    wait_for_new_pid(models_service, "primary", old)
    time.sleep(0.5)
    stop.set()
    loader.join()

    assert all(answer["status"] == 201 for answer in answers), "the API never failed"
    assert all(answer["prediction"] == "fine" and "fallback" not in answer for answer in answers[:killed_at])
    fallbacks = [answer for answer in answers if "fallback" in answer]
    assert fallbacks, "some requests came while the primary was down"
    assert all(a["prediction"] == "backup" and a["fallback"] == {"reason": "unavailable", "answeredBy": "backup"} for a in fallbacks)
    assert all(answer["prediction"] == "fine" and "fallback" not in answer for answer in answers[-10:]), "served by the restarted primary"
    logged = decisions(models_service.service)
    for answer in answers:
        decision = logged[answer["eventId"]]
        assert decision.prediction == answer["prediction"]
        if "fallback" in answer:
            assert (decision.answered_by, decision.fallback, decision.model_version) == ("backup", "unavailable", 1)
        else:
            assert (decision.answered_by, decision.fallback, decision.model_version) == ("primary", None, 1)
        assert 0 < decision.model_latency < 1.0


def test_a_hung_backend_is_killed_and_restarted_and_rank_answers_the_default_by_the_deadline(models_service):
    models_service.register("sleeper", target="tests.serving.models:misbehave", deadlineMs=200, hangTimeoutS=1.0, default="late")
    models_service.wait_up("sleeper")
    models_service.service.create_loop("patient", models=["sleeper"])
    old = pid_of(models_service, "sleeper")
    started = time.monotonic()
    hung = models_service.rank("patient", ["sleeper"], [{"do": "hang"}])
    assert time.monotonic() - started < 1.0
    assert hung["prediction"] == "late" and hung["fallback"] == {"reason": "deadline", "answeredBy": None}
    new = wait_for_new_pid(models_service, "sleeper", old)
    assert new != old
    assert models_service.rank("patient", ["sleeper"], [{"do": "nothing"}])["prediction"] == "fine"
    metrics = models_service.supervisor.metrics
    assert metrics.restarts.labels("sleeper", "hung")._value.get() == 1


def test_a_model_over_its_memory_allowance_fails_fast_and_its_replica_restarts(models_service):
    models_service.register(
        "hog", target="tests.serving.models:misbehave", memoryLimitMb=128, fallback="steady", deadlineMs=5000, default="none"
    )
    models_service.register("steady", target="tests.serving.models:constant")
    models_service.wait_up("hog")
    models_service.wait_up("steady")
    models_service.service.create_loop("greedy", models=["hog"])
    old = pid_of(models_service, "hog")
    started = time.monotonic()
    answer = models_service.rank("greedy", ["hog"], [{"do": "hog"}])
    assert time.monotonic() - started < 2.0, "a failing model is not waited for until the deadline"
    assert answer["prediction"] == "backup" and answer["fallback"] == {"reason": "error", "answeredBy": "steady"}
    wait_for_new_pid(models_service, "hog", old)
    assert models_service.rank("greedy", ["hog"], [{"do": "nothing"}])["prediction"] == "fine"


def test_an_update_replaces_the_replicas_while_rank_keeps_getting_the_models_answers(models_service):
    models_service.register("steady", target="tests.serving.models:misbehave", replicas=2, deadlineMs=2000)
    first = {backend["pid"] for backend in models_service.wait_up("steady")}
    models_service.service.create_loop("rolling", models=["steady"])
    client = models_service.service.app.test_client()
    answers: list[dict] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            answers.append(client.post("/rank", json={"loop": "rolling", "actions": [{"id": "steady"}]}).json)

    loader = threading.Thread(target=load)
    loader.start()
    time.sleep(0.3)
    assert models_service.service.client.patch("/models/steady", json={"maxBatchSize": 8}).json["version"] == 2
    second = {backend["pid"] for backend in models_service.wait_up("steady", version=2)}
    time.sleep(1.0)
    stop.set()
    loader.join()
    assert first.isdisjoint(second), "every replica was replaced"
    bad = [answer for answer in answers if answer.get("prediction") != "fine" or "fallback" in answer]
    assert len(answers) > 20 and not bad, bad[:3]
    logged = decisions(models_service.service)
    assert {logged[answer["eventId"]].model_version for answer in answers} == {1, 2}
