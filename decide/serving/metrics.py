"""Per-model Prometheus metrics: what API workers see of each request, and what the supervisor sees of each replica.

Under ``decide serve`` both land in the shared multiprocess directory, so the
API's ``/metrics`` shows them together. Queue time, compute time and batch size
are the backend's own measurements, returned with each prediction.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class ModelMetrics:
    """Recorded by API workers, per request."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "decide_model_requests",
            "Requests to a model's backends, by outcome: answered, deadline, rejected, error, unavailable",
            ["model", "outcome"],
            registry=registry,
        )
        self.fallbacks = Counter(
            "decide_model_fallbacks", "Rank answers given by a fallback instead of the chosen model, by reason", ["model", "reason"], registry=registry
        )
        self.rejections = Counter("decide_model_rejections", "Requests a backend refused because its queue was full", ["model"], registry=registry)
        self.latency = Histogram(
            "decide_model_latency_seconds", "Round trip of answered requests, API to backend and back", ["model"], buckets=LATENCY_BUCKETS, registry=registry
        )
        self.queue = Histogram(
            "decide_model_queue_seconds", "Time answered requests waited in the backend's queue", ["model"], buckets=LATENCY_BUCKETS, registry=registry
        )
        self.compute = Histogram(
            "decide_model_compute_seconds", "Compute time of the batch each answered request was in", ["model"], buckets=LATENCY_BUCKETS, registry=registry
        )
        self.batch_size = Histogram(
            "decide_model_batch_size", "Size of the batch each answered request was computed in", ["model"], buckets=BATCH_BUCKETS, registry=registry
        )


class BackendMetrics:
    """Recorded by the supervisor, per replica check."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.up = Gauge("decide_model_backends_up", "Replicas answering their health check", ["model"], multiprocess_mode="livesum", registry=registry)
        self.restarts = Counter("decide_model_restarts", "Replicas restarted, by reason: exited, hung, updated", ["model", "reason"], registry=registry)
        self.batch_target = Gauge(
            "decide_model_batch_size_target", "The batch size AIMD currently aims for, per replica", ["model", "replica"], multiprocess_mode="livemax", registry=registry
        )
        self.expired = Counter("decide_model_expired", "Requests dropped uncomputed because they could no longer be answered by their deadline", ["model"], registry=registry)
        self.computed = Counter("decide_model_computed", "Inputs computed by the model", ["model"], registry=registry)
