"""One real backend process, driven directly: deadlines, a full queue, model errors, AIMD."""

from __future__ import annotations

import signal
import statistics
import threading
import time
from pathlib import Path

from decide.serving.protocol import ERROR, REJECTED


def test_requests_past_their_deadline_are_never_computed(start_backend, tmp_path):
    backend = start_backend("slow", target="tests.serving.models:echo", maxBatchSize=1, maxWaitMs=0)
    log = tmp_path / "computed.log"
    blocker = backend.call({"tag": "blocker", "sleep": 0.5, "log": str(log)}, budget=5.0)
    time.sleep(0.1)
    doomed = [backend.call({"tag": f"doomed-{i}", "log": str(log)}, budget=0.1) for i in range(10)]
    survivor = backend.call({"tag": "survivor", "log": str(log)}, budget=5.0)
    assert blocker.wait(5.0)["y"] == "blocker"
    assert survivor.wait(5.0)["y"] == "survivor"
    assert all(call.wait(0.0) is None for call in doomed), "expired requests get no answer: their caller has moved on"
    assert log.read_text().split() == ["blocker", "survivor"], "the model never saw the expired requests"
    status = backend.status()
    assert status["expired"] == 10 and status["computed"] == 2


def test_a_full_queue_rejects_at_once(start_backend):
    backend = start_backend("busy", target="tests.serving.models:echo", maxBatchSize=1, maxWaitMs=0, queueLimit=4)
    blocker = backend.call({"tag": "blocker", "sleep": 1.0}, budget=10.0)
    time.sleep(0.1)
    queued = [backend.call({"tag": f"queued-{i}"}, budget=10.0) for i in range(4)]
    waits = []
    for i in range(30):
        started = time.perf_counter()
        reply = backend.call({"tag": f"extra-{i}"}, budget=10.0).wait(1.0)
        waits.append(time.perf_counter() - started)
        assert reply["e"] == REJECTED and "full" in reply["d"]
    assert statistics.median(waits) < 0.005, f"median rejection took {statistics.median(waits) * 1000:.2f} ms"
    assert max(waits) < 0.1
    assert blocker.wait(5.0)["y"] == "blocker"
    assert [call.wait(5.0)["y"] for call in queued] == [f"queued-{i}" for i in range(4)], "queued requests are still served"
    assert backend.status()["rejected"] == 30


def test_a_model_error_answers_that_batch_with_an_error_and_the_backend_goes_on(start_backend):
    backend = start_backend("moody", target="tests.serving.models:misbehave")
    reply = backend.call({"do": "fail"}, budget=5.0).wait(5.0)
    assert reply["e"] == ERROR and "ValueError: asked to fail" in reply["d"]
    assert backend.call({"do": "nothing"}, budget=5.0).wait(5.0)["y"] == "fine"
    assert backend.status()["failed"] == 1


def test_the_batch_size_adapts_to_the_latency_objective(start_backend):
    """2 ms + 1 ms per input against a 40 ms objective: a batch must compute within (40 - 1) / 2 = 19.5 ms."""
    backend = start_backend("linear", target="tests.serving.models:linear_cost", maxBatchSize=256, maxWaitMs=1.0, latencyObjectiveMs=40.0)
    fitting = 17
    stop = threading.Event()

    def offer() -> None:
        while not stop.is_set():
            for _ in range(20):
                backend.call(None, budget=0.04)
            time.sleep(0.01)

    loader = threading.Thread(target=offer)
    loader.start()
    time.sleep(3.0)
    status = backend.status()
    stop.set()
    loader.join()
    recent = status["recentBatchSizes"][-60:]
    assert 0.7 * fitting <= statistics.median(recent) <= fitting + 1, recent
    assert max(recent) <= fitting + 3, recent
    assert 0.7 * fitting <= status["batchSize"] <= fitting + 1


def test_a_replica_that_stops_reading_cannot_hold_a_caller_past_its_deadline(start_backend, tmp_path):
    backend = start_backend("frozen", target="tests.serving.models:echo")
    log = tmp_path / "computed.log"
    backend.process.send_signal(signal.SIGSTOP)
    wait_stopped(backend.process.pid)
    try:
        big = {"tag": "x" * 100_000, "log": str(log)}
        for _ in range(10):
            started = time.monotonic()
            backend.call(big, budget=0.2)
            assert time.monotonic() - started < 0.5, "sending gives up at the deadline once the socket is full"
        time.sleep(0.3)
    finally:
        backend.process.send_signal(signal.SIGCONT)
    assert backend.call({"tag": "after", "log": str(log)}, budget=5.0).wait(5.0)["y"] == "after", "the resumed replica answers again"
    assert log.read_text().split() == ["after"], "requests whose deadline passed while the replica was stopped are never computed"


def wait_stopped(pid: int, timeout: float = 5.0) -> None:
    """Until the kernel reports ``pid`` stopped: SIGSTOP is delivered asynchronously."""
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "T":
        assert time.monotonic() < deadline, f"process {pid} did not stop"
        time.sleep(0.01)
