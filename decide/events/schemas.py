"""The versioned JSON records that flow through the event log; the one place they are defined.

Decisions go to the ``decisions`` stream; rewards and activations to the ``rewards``
stream. Both are keyed by ``event_id``, so a decision and its outcomes share a
partition number. Each record carries a unique ``id`` so that a record delivered
twice (a producer retry, a replay) is recognised and counted once.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Literal, Union

import msgspec
import orjson

DECISIONS = "decisions"
REWARDS = "rewards"
STREAMS = (DECISIONS, REWARDS)

DECISION_SCHEMA = "decide.decision/1"
REWARD_SCHEMA = "decide.reward/1"
ACTIVATION_SCHEMA = "decide.activation/1"

JoinReason = Literal["observed", "default", "deactivated", "unmatched"]


class _RandomBits:
    """The operating system's random bytes, read 4 KiB at a time by each thread.

    A rank needs two ids and a reward one. Reading each from ``os.urandom`` is a
    system call that releases the GIL, and under load every release hands it to
    another request thread. A forked child starts afresh, so that it never hands
    out bytes its parent has handed out.
    """

    CHUNK = 4096

    def __init__(self) -> None:
        self._threads = threading.local()
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._threads = threading.local()

    def take(self, count: int) -> bytes:
        local = self._threads
        start = getattr(local, "used", self.CHUNK)
        if start + count > self.CHUNK:
            local.buffer, start = os.urandom(self.CHUNK), 0
        local.used = start + count
        return local.buffer[start : start + count]


_RANDOM_BITS = _RandomBits()


def new_id() -> str:
    """128 random bits as 32 hex digits: event ids the API generates, and every record's id."""
    return _RANDOM_BITS.take(16).hex()


@dataclass(frozen=True)
class Decision:
    """What was decided, with the full probability vector: everything learning and evaluation need."""

    event_id: str
    loop: str
    timestamp: float
    policy_version: int
    context: list[Any]
    actions: list[dict[str, Any]]
    excluded: list[str]
    chosen: str
    probabilities: list[float]
    deferred: bool = False
    id: str = field(default_factory=new_id)
    schema: str = DECISION_SCHEMA
    prediction: Any = None
    """In a model loop: the prediction answered (the chosen model's, a fallback model's or the default)."""
    answered_by: str | None = None
    """The model whose prediction it is; None when it is the configured default or the loop has no models."""
    model_version: int | None = None
    model_latency: float | None = None
    """Seconds from asking the chosen model to having the answer, fallbacks included."""
    fallback: str | None = None
    """Why the chosen model did not answer (deadline, rejected, error, unavailable, unregistered); None when it did."""

    @property
    def propensity(self) -> float:
        """Probability with which the chosen action was chosen."""
        index = next(i for i, action in enumerate(self.actions) if action["id"] == self.chosen)
        return self.probabilities[index]


@dataclass(frozen=True)
class Reward:
    event_id: str
    value: float
    timestamp: float
    loop: str | None = None
    id: str = field(default_factory=new_id)
    schema: str = REWARD_SCHEMA


@dataclass(frozen=True)
class Activation:
    """Deferred activation: the decision was really shown, so it now joins and learns."""

    event_id: str
    timestamp: float
    loop: str | None = None
    id: str = field(default_factory=new_id)
    schema: str = ACTIVATION_SCHEMA


@dataclass(frozen=True)
class DecisionHeader:
    """A logged decision as joining sees it: its context and actions, four fifths of the record, stay unparsed."""

    event_id: str
    loop: str
    timestamp: float
    deferred: bool = False


Event = Union[Decision, Reward, Activation]
JoinedEvent = DecisionHeader | Reward | Activation
_BY_SCHEMA: dict[str, type] = {DECISION_SCHEMA: Decision, REWARD_SCHEMA: Reward, ACTIVATION_SCHEMA: Activation}


def encode(event: Event) -> str:
    """Compact JSON; numbers are finite here because the API refuses non-finite input.

    orjson is several times faster; the standard library takes the rare integer beyond 64 bits.
    """
    try:
        return orjson.dumps(event).decode()
    except orjson.JSONEncodeError:
        return json.dumps(vars(event), separators=(",", ":"), allow_nan=False)


def decode(text: str) -> Event:
    """Parse a record; an unknown schema is an error, never silently skipped."""
    data = orjson.loads(text)
    schema = data.get("schema")
    if schema not in _BY_SCHEMA:
        raise ValueError(f"unknown event schema {schema!r}")
    return _BY_SCHEMA[schema](**data)


class _Header(msgspec.Struct):
    """The fields of any record that joining reads; msgspec steps over the others without building them."""

    schema: str
    event_id: str
    timestamp: float
    loop: str | None = None
    deferred: bool = False


_HEADER = msgspec.json.Decoder(_Header)


def decode_for_join(text: str) -> JoinedEvent:
    """``decode``, except that a decision comes as its header: a fifth to a quarter of the cost (joins keep the text)."""
    try:
        header = _HEADER.decode(text)
    except msgspec.DecodeError as error:
        raise ValueError(f"not an event record: {error}") from error
    if header.schema != DECISION_SCHEMA:
        return decode(text)
    if header.loop is None:
        raise ValueError("a decision record without its loop")
    return DecisionHeader(header.event_id, header.loop, header.timestamp, header.deferred)


def stream_of(event: Event) -> str:
    return DECISIONS if isinstance(event, Decision) else REWARDS
