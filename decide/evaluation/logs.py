"""Logged decisions with their joined rewards: read from the SQL archive, moved as dsjson.

Offline evaluation reads the ``examples`` archive (one loop, a time range) or a
file. Files are JSON lines in the Vowpal Wabbit decision-service format
(``--dsjson``), so logs move between decide and Vowpal Wabbit both ways:

* ``c`` holds the context features (one object) and ``_multi`` the actions in
  request order, each with its id in ``_tag``;
* ``a`` lists 1-based action indices, chosen first, and ``p`` their probabilities;
* ``_label_cost`` is the negated reward (VW minimizes cost),
  ``_label_probability`` the chosen action's probability, ``_label_Action`` and
  ``_labelIndex`` its 1- and 0-based index, ``o`` the observed outcome;
* ``_skipLearn`` marks deferred decisions that were never activated;
* ``VWState.m`` names the loop and policy version (``<loop>/<version>``).

On import, a namespace written as a list of objects (as Personalizer exports
them) becomes one nested object, which is how decide spells a namespace.

Excluded actions are not exported: they were never candidates, so neither VW
nor any evaluated policy may choose them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from decide.config import LoopConfig
from decide.errors import Invalid
from decide.events.schemas import Decision
from decide.store import queries
from decide.store.models import Example

LEARNABLE = ("observed", "default")


class LogError(Invalid):
    """A log line or query that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class LoggedExample:
    """A decision with the reward it was joined with: one row of the archive."""

    decision: Decision
    reward: float
    reason: str = "observed"

    @property
    def learnable(self) -> bool:
        return self.reason in LEARNABLE


def read_archive(
    session: Session, loop: str, since: float | None = None, until: float | None = None, limit: int | None = None
) -> list[LoggedExample]:
    """The loop's archived decisions decided in [since, until), oldest first; ``limit`` keeps the newest."""
    query = select(Example.decision, Example.reward, Example.reason).where(
        Example.loop == loop, Example.decision.is_not(None), Example.reason.in_((*LEARNABLE, "deactivated"))
    )
    if since is not None:
        query = query.where(Example.decided_at >= since)
    if until is not None:
        query = query.where(Example.decided_at < until)
    query = query.order_by(Example.decided_at.desc(), Example.event_id.desc())
    if limit is not None:
        query = query.limit(limit)
    rows = list(session.execute(query))
    rows.reverse()
    return [
        LoggedExample(Decision(**json.loads(row.decision)), 0.0 if row.reward is None else row.reward, row.reason)
        for row in rows
    ]


@dataclass(frozen=True)
class LoopLog:
    """A loop's archived traffic, with the configuration it is featurized by and its version history."""

    loop: str
    config: LoopConfig
    examples: list[LoggedExample]
    versions: list[dict[str, Any]]


def loop_log(
    session: Session, loop: str, since: float | None = None, until: float | None = None, limit: int | None = None
) -> LoopLog:
    """Everything an evaluation of ``loop`` reads; raises ``queries.LoopNotFound``."""
    config = queries.config_of(queries.current(session, loop))
    versions = [
        {"version": row.version, "createdAt": row.created_at, "examplesLearned": row.examples_learned, "note": row.note}
        for row in queries.versions(session, loop)
    ]
    return LoopLog(loop, config, read_archive(session, loop, since, until, limit), versions)


def parse_time(text: str) -> float:
    """Seconds since the epoch from a number or an ISO 8601 time (UTC unless it says otherwise)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise LogError(f"{text!r} is neither seconds since the epoch nor an ISO 8601 time like 2024-05-01T12:00") from error
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def to_dsjson(example: LoggedExample) -> dict[str, Any]:
    """One decision-service JSON line for ``example``."""
    decision = example.decision
    excluded = set(decision.excluded)
    kept = [i for i, action in enumerate(decision.actions) if action["id"] not in excluded]
    ids = [decision.actions[i]["id"] for i in kept]
    probabilities = [decision.probabilities[i] for i in kept]
    chosen = ids.index(decision.chosen)
    order = [chosen] + [i for i in range(len(ids)) if i != chosen]
    line: dict[str, Any] = {
        "_label_cost": -example.reward,
        "_label_probability": probabilities[chosen],
        "_label_Action": chosen + 1,
        "_labelIndex": chosen,
    }
    if not example.learnable:
        line["_skipLearn"] = True
    if example.reason == "observed":
        line["o"] = [{"v": example.reward, "EventId": decision.event_id, "ActionTaken": False}]
    context = _merged(decision.context, f"event {decision.event_id}: context")
    multi = [
        {"_tag": decision.actions[i]["id"], **_merged(decision.actions[i].get("features"), f"event {decision.event_id}: action {ids[n]!r}")}
        for n, i in enumerate(kept)
    ]
    return line | {
        "Timestamp": _timestamp(decision.timestamp),
        "Version": "1",
        "EventId": decision.event_id,
        "a": [i + 1 for i in order],
        "c": {**context, "_multi": multi},
        "p": [probabilities[i] for i in order],
        "VWState": {"m": f"{decision.loop}/{decision.policy_version}"},
    }


def from_dsjson(line: dict[str, Any], loop: str = "imported") -> LoggedExample:
    """The example a decision-service JSON line describes; ``loop`` is used when ``VWState`` names none."""
    try:
        context = {key: _namespaced(value) for key, value in line["c"].items() if key != "_multi"}
        multi = line["c"]["_multi"]
        order = [int(i) - 1 for i in line["a"]]
        chosen = int(line["_labelIndex"]) if "_labelIndex" in line else int(line["_label_Action"]) - 1
        probabilities = [0.0] * len(multi)
        for index, probability in zip(order, line["p"], strict=True):
            probabilities[index] = float(probability)
        cost = float(line["_label_cost"])
        event_id = str(line["EventId"])
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise LogError(f"not a decision-service line ({type(error).__name__}: {error})") from error
    if sorted(order) != list(range(len(multi))) or not 0 <= chosen < len(multi):
        raise LogError(f"event {event_id}: 'a' and '_labelIndex' do not index the {len(multi)} actions of '_multi'")
    ids = [str(item.get("_tag", index)) for index, item in enumerate(multi)]
    source, _, version = str(line.get("VWState", {}).get("m", "")).rpartition("/")
    named = bool(source) and version.isdigit()
    decision = Decision(
        event_id=event_id,
        loop=source if named else loop,
        timestamp=_parse_timestamp(line.get("Timestamp"), event_id),
        policy_version=int(version) if named else 0,
        context=[context] if context else [],
        actions=[{"id": action_id, "features": _features(item)} for action_id, item in zip(ids, multi)],
        excluded=[],
        chosen=ids[chosen],
        probabilities=probabilities,
    )
    reason = "deactivated" if line.get("_skipLearn") else ("observed" if line.get("o") else "default")
    return LoggedExample(decision, -cost, reason)


def write_dsjson(examples: Iterable[LoggedExample], stream: IO[str]) -> int:
    """Write ``examples`` as JSON lines; returns how many."""
    count = 0
    for example in examples:
        stream.write(json.dumps(to_dsjson(example), separators=(",", ":"), allow_nan=False) + "\n")
        count += 1
    return count


def read_dsjson(stream: IO[str], loop: str = "imported") -> Iterator[LoggedExample]:
    """Examples from decision-service JSON lines; blank lines are skipped, bad ones name their line number."""
    for number, text in enumerate(stream, start=1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except json.JSONDecodeError as error:
            raise LogError(f"line {number}: not JSON ({error})") from error
        if not isinstance(line, dict):
            raise LogError(f"line {number}: expected a JSON object")
        try:
            yield from_dsjson(line, loop)
        except LogError as error:
            raise LogError(f"line {number}: {error}") from error


def _merged(features: Any, what: str) -> dict[str, Any]:
    """A Personalizer feature list as the single object dsjson holds; repeated keys cannot be represented."""
    if features is None:
        return {}
    if isinstance(features, dict):
        return dict(features)
    merged: dict[str, Any] = {}
    for item in features:
        for key, value in (item or {}).items():
            if key in merged:
                raise LogError(f"{what} repeats the feature key {key!r}, which one dsjson object cannot hold")
            merged[key] = value
    return merged


def _features(item: dict[str, Any]) -> list[dict[str, Any]]:
    features = {key: _namespaced(value) for key, value in item.items() if key != "_tag"}
    return [features] if features else []


def _namespaced(value: Any) -> Any:
    """VW also spells a namespace as a list of objects; decide spells it as one nested object."""
    if isinstance(value, dict):
        return {key: _namespaced(item) for key, item in value.items()}
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        merged: dict[str, Any] = {}
        for item in value:
            merged.update(_namespaced(item))
        return merged
    return value


def _timestamp(seconds: float) -> str:
    """The decision service's format: seven fractional digits and a Z."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def _parse_timestamp(text: Any, event_id: str) -> float:
    if not isinstance(text, str):
        raise LogError(f"event {event_id}: Timestamp must be a string like 2021-07-29T10:00:00.999Z")
    body = text.rstrip("Z")
    whole, _, fraction = body.partition(".")
    try:
        moment = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError as error:
        raise LogError(f"event {event_id}: Timestamp {text!r} is not like 2021-07-29T10:00:00.999Z") from error
    return moment.timestamp() + (float(f"0.{fraction}") if fraction.isdigit() else 0.0)
