"""Edges of the batching queue and of AIMD that the serving tests leave open (found by mutation testing).

Each test states a promise of ``decide/serving/batching.py`` that a backend relies on:
what a taken request carries, the order of ties, exact-deadline and exact-budget
boundaries, that a waiting taker is woken (not left to its timer) and sleeps
rather than spins, and AIMD's window.
"""

from __future__ import annotations

import threading
import time

import pytest

from decide.serving.batching import Aimd, BatchQueue


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_taken_request_carries_what_was_queued_and_when_it_arrived():
    clock = Clock()
    queue = BatchQueue(limit=10, max_wait=0.0, clock=clock)
    reply_to = object()
    queue.put(7, {"x": [1, 2]}, 0.5, reply_to)
    (request,) = queue.take(4)
    assert request.id == 7
    assert request.input == {"x": [1, 2]}
    assert request.reply_to is reply_to
    assert request.arrival == 100.0, "the backend measures queueing latency from the arrival"
    assert request.deadline == 100.5


def test_requests_with_the_same_deadline_come_out_in_arrival_order():
    queue = BatchQueue(limit=10, max_wait=0.0, clock=Clock())
    for id in range(5):
        queue.put(id, None, 1.0, None)
    assert [request.id for request in queue.take(3)] == [0, 1, 2]
    assert [request.id for request in queue.take(3)] == [3, 4]


def test_a_request_is_dropped_once_its_deadline_is_reached():
    clock = Clock()
    queue = BatchQueue(limit=10, max_wait=0.0, clock=clock)
    queue.put(1, None, 0.25, None)
    queue.put(2, None, 0.75, None)
    clock.now = 100.25  # exactly the first request's deadline: its caller has fallen back
    assert [request.id for request in queue.take(10)] == [2]
    queue.put(3, None, 0.5, None)  # deadline 100.75
    queue.put(4, None, 1.0, None)
    assert [request.id for request in queue.take(10, horizon=0.5)] == [4], "a batch due exactly at the deadline is too late"


def test_the_expired_count_counts_every_dropped_request():
    clock = Clock()
    queue = BatchQueue(limit=10, max_wait=0.0, clock=clock)
    for id in range(3):
        queue.put(id, None, 0.01, None)
    queue.put(3, None, 1.0, None)
    clock.now += 0.5
    assert [request.id for request in queue.take(10)] == [3]
    assert queue.expired == 3
    queue.put(4, None, 0.01, None)
    clock.now += 0.5
    queue.put(5, None, 1.0, None)
    assert queue.expired == 4


def _taker(queue: BatchQueue, size: int) -> tuple[threading.Thread, list[list[int]], list[float]]:
    batches: list[list[int]] = []
    finished: list[float] = []

    def take() -> None:
        batches.append([request.id for request in queue.take(size)])
        finished.append(time.monotonic())

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    time.sleep(0.05)  # the taker is waiting on an empty queue
    return thread, batches, finished


def test_a_taker_waiting_on_an_empty_queue_is_woken_by_the_first_request():
    queue = BatchQueue(limit=10, max_wait=0.05)
    thread, batches, _ = _taker(queue, 8)
    queue.put(1, None, 60.0, None)
    thread.join(timeout=2.0)
    alive = thread.is_alive()
    queue.close()  # releases a taker left waiting, so the test ends either way
    thread.join(timeout=2.0)
    assert not alive, "a lone request must leave after max_wait, not wait for a second request"
    assert batches == [[1]]


def test_a_batch_that_fills_up_one_request_at_a_time_leaves_when_it_is_full():
    queue = BatchQueue(limit=10, max_wait=30.0)
    thread, batches, finished = _taker(queue, 3)
    for id in range(3):
        queue.put(id, None, 60.0, None)
        time.sleep(0.05)  # the taker goes back to waiting between requests
    filled = time.monotonic()
    thread.join(timeout=2.0)
    alive = thread.is_alive()
    queue.close()
    thread.join(timeout=2.0)
    assert not alive, "a full batch must leave at once, not after max_wait"
    assert batches == [[0, 1, 2]]
    assert finished[0] - filled < 1.0


def test_waiting_for_company_sleeps_instead_of_polling_the_clock():
    calls = 0

    def clock() -> float:
        nonlocal calls
        calls += 1
        return time.monotonic()

    queue = BatchQueue(limit=10, max_wait=0.1, clock=clock)
    queue.put(1, None, 60.0, None)
    assert [request.id for request in queue.take(8)] == [1]
    assert calls < 20, f"the clock was read {calls} times in 0.1 s: the taker is spinning"


def test_aimd_starts_with_single_requests():
    assert Aimd(max_size=64, budget=1.0).size == 1
    assert Aimd.for_objective(max_size=64, objective=0.05, max_wait=0.002).size == 1


def test_aimd_budget_keeps_a_tenth_of_the_objective_when_the_wait_takes_all_of_it():
    aimd = Aimd.for_objective(max_size=64, objective=0.040, max_wait=0.100)
    assert aimd.budget == pytest.approx(0.002)


def grown(size: int, budget: float = 1.0) -> Aimd:
    aimd = Aimd(max_size=64, budget=budget)
    while aimd.size < size:
        aimd.observe(aimd.size, budget / 10)
    assert aimd.size == size
    return aimd


def test_three_slow_batches_in_five_shrink_the_size_by_a_tenth():
    aimd = grown(20)
    aimd.observe(20, 2.0)
    aimd.observe(20, 2.0)
    assert aimd.size == 20, "two slow batches are not enough"
    aimd.observe(20, 2.0)
    assert aimd.size == 18


def test_a_batch_that_takes_exactly_the_budget_is_within_it():
    aimd = grown(10, budget=0.5)
    for _ in range(5):
        aimd.observe(aimd.size, 0.5)
    assert aimd.size == 15, "each full batch within the budget grows the size by one, none shrinks it"


def test_slow_batches_further_apart_than_the_window_never_shrink_the_size():
    aimd = grown(20)
    sizes = []
    for number in range(30):
        aimd.observe(aimd.size, 2.0 if number % 3 == 0 else 0.1)
        sizes.append(aimd.size)
    assert sizes == sorted(sizes), "at most two slow batches in any five: the machine was busy, the size is right"


def test_the_size_never_drops_below_one():
    aimd = Aimd(max_size=64, budget=0.1)
    for _ in range(9):
        aimd.observe(1, 1.0)
        assert aimd.size == 1


def test_the_expected_compute_time_follows_the_last_five_batches():
    aimd = Aimd(max_size=64, budget=1.0)
    for _ in range(20):
        aimd.observe(1, 0.9)
    for compute in (0.1, 0.3, 0.2, 0.1, 0.2):
        aimd.observe(1, compute)
    assert aimd.expected == pytest.approx(0.2), "a machine that became fast again is trusted after five batches"
