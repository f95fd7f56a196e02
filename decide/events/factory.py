"""Open the event log the settings select."""

from __future__ import annotations

from sqlalchemy import Engine

from decide.config import Settings
from decide.events.embedded import EmbeddedLog
from decide.events.log import EventLog
from decide.events.schemas import STREAMS


def open_log(settings: Settings, engine: Engine) -> EventLog:
    if settings.event_log == "embedded":
        return EmbeddedLog(engine, settings.partitions, STREAMS)
    raise ValueError(f"event_log must be 'embedded' or 'kafka'; the Kafka log is not available in this build: {settings.event_log!r}")
