"""Dynamic batching inside a backend: a bounded, deadline-ordered queue and an AIMD batch size.

The queue hands out the requests whose deadlines come first (earliest deadline
first) and skips, uncomputed, those that can no longer be answered in time:
their deadline has passed, or comes before a typical batch would finish. Their
caller has already fallen back, so computing them would only delay the others.
It refuses new requests when full, so that an overloaded backend answers
"rejected" at once instead of letting requests wait to time out.

The batch size adapts as in Clipper: it grows by one after every full batch
computed within the budget, and shrinks by 10% once three of the last five batches took longer than the
budget (one slow batch, say the machine was busy, is not enough). The budget is
half of what is left of the latency objective after the batching wait, because
a request that arrives while a batch computes waits for that batch and then for
its own: two batch times plus the wait stay within the objective.
"""

from __future__ import annotations

import heapq
import itertools
import math
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(order=True)
class Request:
    deadline: float
    sequence: int
    arrival: float = field(compare=False)
    id: int = field(compare=False)
    input: Any = field(compare=False)
    reply_to: Any = field(compare=False)


class BatchQueue:
    def __init__(self, limit: int, max_wait: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.max_wait = max_wait
        self.clock = clock
        self.heap: list[Request] = []
        self.ready = threading.Condition()
        self.waiting_since = math.inf
        self.sequence = itertools.count()
        self.expired = 0
        self.wanted = 1
        self.closed = False

    def put(self, id: int, input: Any, budget: float, reply_to: Any) -> bool:
        """Queue a request; False (nothing queued) when the queue is full of live requests."""
        now = self.clock()
        with self.ready:
            self._drop_expired(now)
            if len(self.heap) >= self.limit:
                return False
            if not self.heap:
                self.waiting_since = now
            heapq.heappush(self.heap, Request(now + budget, next(self.sequence), now, id, input, reply_to))
            if len(self.heap) == 1 or len(self.heap) >= self.wanted:
                self.ready.notify()
            return True

    def take(self, size: int, horizon: float = 0.0) -> list[Request]:
        """The next batch of at most ``size`` live requests: once ``size`` are queued or the oldest waited ``max_wait``.

        Requests that would not be answered within ``horizon`` seconds (the expected
        compute time) of their deadline are dropped. Blocks until there is a batch;
        returns [] only once the queue is closed and empty.
        """
        with self.ready:
            self.wanted = size
            while True:
                now = self.clock()
                self._drop_expired(now + horizon)
                if self.heap and (len(self.heap) >= size or now >= self.waiting_since + self.max_wait):
                    break
                if self.closed and not self.heap:
                    return []
                timeout = None if not self.heap else self.waiting_since + self.max_wait - now
                self.ready.wait(timeout)
            batch = [heapq.heappop(self.heap) for _ in range(min(size, len(self.heap)))]
            # Requests left behind have waited for a whole batch already: the next batch is due at once.
            self.waiting_since = -math.inf if self.heap else math.inf
            return batch

    def _drop_expired(self, until: float) -> None:
        while self.heap and self.heap[0].deadline <= until:
            heapq.heappop(self.heap)
            self.expired += 1

    def __len__(self) -> int:
        return len(self.heap)

    def close(self) -> None:
        """Let ``take`` drain what is queued, then return []."""
        with self.ready:
            self.closed = True
            self.waiting_since = -math.inf
            self.ready.notify_all()


class Aimd:
    """Additive increase, multiplicative decrease of the batch size against a compute-time budget."""

    WINDOW = 5
    VIOLATIONS = 3

    def __init__(self, max_size: int, budget: float, increase: int = 1, decrease: float = 0.9) -> None:
        self.max_size = max_size
        self.budget = budget
        self.increase = increase
        self.decrease = decrease
        self.size = 1
        self.over: deque[bool] = deque(maxlen=self.WINDOW)
        self.computes: deque[float] = deque(maxlen=self.WINDOW)

    @classmethod
    def for_objective(cls, max_size: int, objective: float, max_wait: float) -> Aimd:
        return cls(max_size, max(objective - max_wait, objective / 10) / 2)

    @property
    def expected(self) -> float:
        """A typical batch's compute time now (the median of the last few)."""
        return statistics.median(self.computes) if self.computes else 0.0

    def observe(self, batch_size: int, compute: float) -> None:
        self.computes.append(compute)
        self.over.append(compute > self.budget)
        if sum(self.over) >= self.VIOLATIONS:
            self.size = max(1, math.floor(min(self.size, batch_size) * self.decrease))
            self.over.clear()
        elif batch_size >= self.size and compute <= self.budget:
            self.size = min(self.max_size, self.size + self.increase)
