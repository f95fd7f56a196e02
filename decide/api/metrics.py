"""Prometheus metrics of one app instance, aggregated across gunicorn workers when configured.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``decide serve`` sets it), every worker
process writes its samples there and ``/metrics`` sums them; otherwise the
app's own registry is exposed.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

UNNAMED_LOOP = "_unnamed"
"""The ``loop`` label of a reward whose request named no loop (it counts for its decision's loop, which the API does not look up).

No loop can have this name (a loop's name starts with a letter or a digit), so the label is never mistaken for one.
"""

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "decide_http_requests", "HTTP requests by endpoint and status", ["endpoint", "status"], registry=registry
        )
        self.latency = Histogram(
            "decide_http_request_seconds", "Request latency by endpoint", ["endpoint"], buckets=LATENCY_BUCKETS, registry=registry
        )
        self.decisions = Counter("decide_decisions", "Decisions logged", ["loop"], registry=registry)
        self.rewards = Counter(
            "decide_rewards", f"Rewards logged, by the loop the request named ({UNNAMED_LOOP} when it named none)", ["loop"], registry=registry
        )
        self.late_rewards = Counter(
            "decide_late_rewards", "Rewards refused because their join had closed", registry=registry
        )
        self.log_failures = Counter("decide_event_log_failures", "Appends the event log refused", registry=registry)
        self.served_version = Gauge(
            "decide_served_policy_version", "Policy version served", ["loop"], multiprocess_mode="max", registry=registry
        )
        self._children: dict[tuple[Any, ...], Any] = {}
        self._served: dict[str, int] = {}

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, looked up once: prometheus_client's own lookup locks and checks every value."""
        key = (metric, *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def served(self, loop: str, version: int) -> None:
        """Set the served-version gauge when it changes, not on every decision."""
        if self._served.get(loop) != version:
            self.child(self.served_version, loop).set(version)
            self._served[loop] = version

    def exposition(self) -> bytes:
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
