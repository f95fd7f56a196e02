"""Open the event log the settings select."""

from __future__ import annotations

from sqlalchemy import Engine

from decide.config import Settings
from decide.errors import Invalid
from decide.events.embedded import open_embedded_log
from decide.events.log import EventLog
from decide.events.schemas import STREAMS
from decide.extras import require


def open_log(settings: Settings, engine: Engine) -> EventLog:
    if settings.event_log == "embedded":
        return open_embedded_log(engine, settings.partitions, STREAMS)
    if settings.event_log == "kafka":
        require("kafka", "kafka")
        from decide.events.kafka import KafkaLog

        return KafkaLog(settings.kafka_bootstrap, settings.topic_prefix, settings.partitions, STREAMS, settings.spool_path)
    raise Invalid(
        f"DECIDE_EVENT_LOG must be 'embedded' or 'kafka', not {settings.event_log!r}",
        field="DECIDE_EVENT_LOG",
        fix="set DECIDE_EVENT_LOG=embedded (the default: the log in the service's own database) or DECIDE_EVENT_LOG=kafka",
    )
