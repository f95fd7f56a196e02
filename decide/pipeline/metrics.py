"""Prometheus metrics of the pipeline worker.

Under ``decide serve`` they land in the shared multiprocess directory and the
API's ``/metrics`` shows them; a standalone ``decide worker --metrics-port``
serves them itself.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class PipelineMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.records = Counter("decide_pipeline_records", "Event-log records consumed", registry=registry)
        self.examples = Counter("decide_pipeline_examples", "Joins closed, by reason", ["reason"], registry=registry)
        self.versions = Counter("decide_pipeline_versions", "Policy versions written", ["loop"], registry=registry)
        self.duplicates = Counter("decide_pipeline_duplicates", "Redelivered records recognised and skipped", registry=registry)
        self.late_rewards = Counter(
            "decide_pipeline_late_rewards", "Rewards that reached a join already closed", registry=registry
        )
        self.conflicts = Counter(
            "decide_pipeline_offset_conflicts", "Cycles dropped because another member moved the offsets", registry=registry
        )
        self.trimmed = Counter(
            "decide_event_log_trimmed", "Embedded event-log records deleted, consumed and past DECIDE_LOG_RETENTION", registry=registry
        )
        self.cycle_seconds = Histogram("decide_pipeline_cycle_seconds", "Duration of one poll-join-learn cycle", registry=registry)
