"""The batching queue and the AIMD batch size, in process with a settable clock."""

from __future__ import annotations

import threading
import time

from decide.serving.batching import Aimd, BatchQueue


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_batches_come_out_earliest_deadline_first():
    queue = BatchQueue(limit=10, max_wait=0.0)
    for id, budget in [(1, 0.3), (2, 0.1), (3, 0.2), (4, 0.4)]:
        assert queue.put(id, None, budget, None)
    assert [request.id for request in queue.take(3)] == [2, 3, 1]
    assert [request.id for request in queue.take(3)] == [4]


def test_requests_past_their_deadline_are_dropped_and_counted():
    clock = Clock()
    queue = BatchQueue(limit=10, max_wait=0.0, clock=clock)
    queue.put(1, None, 0.010, None)
    queue.put(2, None, 0.050, None)
    clock.now += 0.020
    assert [request.id for request in queue.take(10)] == [2]
    assert queue.expired == 1


def test_a_full_queue_refuses_until_room_is_made_or_requests_expire():
    clock = Clock()
    queue = BatchQueue(limit=2, max_wait=0.0, clock=clock)
    assert queue.put(1, None, 0.010, None) and queue.put(2, None, 1.0, None)
    assert not queue.put(3, None, 1.0, None), "full: refused at once"
    clock.now += 0.020
    assert queue.put(3, None, 1.0, None), "the expired request no longer takes room"
    assert len(queue) == 2 and queue.expired == 1


def test_a_lone_request_waits_at_most_max_wait_for_company():
    queue = BatchQueue(limit=10, max_wait=0.02)
    queue.put(1, None, 1.0, None)
    started = time.monotonic()
    assert len(queue.take(8)) == 1
    assert 0.015 <= time.monotonic() - started < 0.2


def test_a_full_batch_leaves_at_once():
    queue = BatchQueue(limit=100, max_wait=10.0)
    taken: list[int] = []
    taker = threading.Thread(target=lambda: taken.extend(request.id for request in queue.take(4)))
    taker.start()
    for id in range(4):
        queue.put(id, None, 60.0, None)
    taker.join(timeout=2.0)
    assert sorted(taken) == [0, 1, 2, 3]


def test_closing_drains_what_is_queued_then_ends():
    queue = BatchQueue(limit=10, max_wait=10.0)
    queue.put(1, None, 60.0, None)
    queue.close()
    assert [request.id for request in queue.take(8)] == [1]
    assert queue.take(8) == []


def test_aimd_settles_where_a_batch_fits_the_budget_and_follows_a_slowdown():
    objective, max_wait = 0.050, 0.002
    aimd = Aimd.for_objective(max_size=512, objective=objective, max_wait=max_wait)
    assert aimd.budget == (objective - max_wait) / 2

    def run(per_item: float, batches: int, spike_every: int = 0) -> list[int]:
        sizes = []
        for number in range(batches):
            size = aimd.size
            slow = 3.0 if spike_every and number % spike_every == 0 else 1.0
            aimd.observe(size, (0.0025 + per_item * size) * slow)
            sizes.append(size)
        return sizes

    fitting = int((aimd.budget - 0.0025) / 0.001)
    settled = run(0.001, 300)[-100:]
    assert max(settled) <= fitting + 3 and min(settled) >= 0.85 * fitting
    noisy = run(0.001, 300, spike_every=4)[-100:]
    assert min(noisy) >= 0.85 * fitting, "one slow batch in four (a busy machine) does not shrink the batches"
    slower = run(0.002, 100)[-50:]
    fitting_slower = int((aimd.budget - 0.0025) / 0.002)
    assert max(slower) <= fitting_slower + 3 and min(slower) >= 0.85 * fitting_slower
    assert aimd.expected <= aimd.budget * 1.2


def test_aimd_grows_only_on_full_batches():
    aimd = Aimd(max_size=64, budget=1.0)
    for _ in range(10):
        aimd.observe(1, 0.001)
    assert aimd.size == 2, "a batch smaller than the target says nothing about a larger one"


def test_requests_that_cannot_finish_by_their_deadline_are_dropped():
    clock = Clock()
    queue = BatchQueue(limit=10, max_wait=0.0, clock=clock)
    queue.put(1, None, 0.030, None)
    queue.put(2, None, 0.100, None)
    assert [request.id for request in queue.take(10, horizon=0.050)] == [2]
    assert queue.expired == 1
