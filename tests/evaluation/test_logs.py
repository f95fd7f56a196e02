"""Logs move between the archive, decide and Vowpal Wabbit's decision-service JSON without loss."""

from __future__ import annotations

import io
import json
import time

import pytest

from decide.evaluation.logs import (
    LogError,
    LoggedExample,
    from_dsjson,
    loop_log,
    parse_time,
    read_dsjson,
    to_dsjson,
    write_dsjson,
)
from decide.events.schemas import Decision

ACTIONS = [
    {"id": "pasta", "features": [{"cuisine": "italian"}, {"price": 12.5}]},
    {"id": "sushi", "features": [{"cuisine": "japanese"}]},
    {"id": "salad", "features": []},
]


def example(reason: str = "observed", excluded: list[str] | None = None) -> LoggedExample:
    decision = Decision(
        event_id="e1", loop="food", timestamp=1_700_000_000.25, policy_version=7,
        context=[{"user": {"tier": "gold"}}, {"device": {"mobile": True}}], actions=ACTIONS, excluded=excluded or [],
        chosen="sushi", probabilities=[0.2, 0.7, 0.1] if not excluded else [0.0, 0.8, 0.2],
    )
    return LoggedExample(decision, 1.0, reason)


def test_an_example_exports_in_the_decision_service_format():
    line = to_dsjson(example())
    assert line["_label_cost"] == -1.0 and line["_label_probability"] == 0.7
    assert (line["_label_Action"], line["_labelIndex"]) == (2, 1)
    assert line["a"] == [2, 1, 3] and line["p"] == [0.7, 0.2, 0.1]
    assert line["c"]["user"] == {"tier": "gold"} and line["c"]["device"] == {"mobile": True}
    assert line["c"]["_multi"][0] == {"_tag": "pasta", "cuisine": "italian", "price": 12.5}
    assert line["EventId"] == "e1" and line["Version"] == "1" and line["VWState"] == {"m": "food/7"}
    assert line["Timestamp"] == "2023-11-14T22:13:20.2500000Z"
    assert line["o"] == [{"v": 1.0, "EventId": "e1", "ActionTaken": False}]
    assert "_skipLearn" not in line


def test_export_then_import_gives_back_the_same_example():
    for reason in ("observed", "default", "deactivated"):
        original = example(reason)
        stream = io.StringIO()
        write_dsjson([original], stream)
        stream.seek(0)
        (back,) = read_dsjson(stream)
        assert back.reason == reason and back.reward == original.reward
        d, o = back.decision, original.decision
        assert (d.event_id, d.loop, d.policy_version, d.chosen, d.probabilities) == (o.event_id, o.loop, 7, "sushi", [0.2, 0.7, 0.1])
        assert d.timestamp == pytest.approx(o.timestamp, abs=1e-6)
        assert [a["id"] for a in d.actions] == ["pasta", "sushi", "salad"]
    assert to_dsjson(example("deactivated"))["_skipLearn"] is True


def test_featurization_survives_the_round_trip():
    from decide.features import FeatureSpace

    original = example()
    back = from_dsjson(json.loads(json.dumps(to_dsjson(original))))
    space = FeatureSpace(dimension=64)
    a = space.action_set(original.decision.context, original.decision.actions)
    b = space.action_set(back.decision.context, back.decision.actions)
    assert (a.context == b.context).all() and (a.features == b.features).all()


def test_excluded_actions_are_not_exported_because_they_were_never_candidates():
    line = to_dsjson(example(excluded=["pasta"]))
    assert [item["_tag"] for item in line["c"]["_multi"]] == ["sushi", "salad"]
    assert (line["_labelIndex"], line["p"]) == (0, [0.8, 0.2])


def test_a_personalizer_export_imports_with_its_namespaces_as_objects():
    text = (
        '{"_label_cost":-0.0,"_label_probability":0.05,"_label_Action":4,"_labelIndex":3,'
        '"o":[{"v":0.0,"EventId":"13118d9b","ActionTaken":false}],"Timestamp":"2021-02-04T16:31:29.2460000Z",'
        '"Version":"1","EventId":"13118d9b","a":[4,2,1,3],'
        '"c":{"FromUrl":[{"timeofday":"Afternoon","weather":"Sunny"}],"_multi":[{"_tag":"Cappucino","j":[{"type":"hot"}]},'
        '{"_tag":"Cold brew","j":[{"type":"cold"}]},{"_tag":"Iced mocha"},{"_tag":"Latte"}]},'
        '"p":[0.05,0.05,0.85,0.05],"VWState":{"m":"N/A"}}'
    )
    (imported,) = read_dsjson(io.StringIO(text + "\n\n"), loop="coffee")
    decision = imported.decision
    assert decision.loop == "coffee" and decision.chosen == "Latte" and decision.propensity == 0.05
    assert decision.probabilities == [0.85, 0.05, 0.05, 0.05]
    assert decision.context == [{"FromUrl": {"timeofday": "Afternoon", "weather": "Sunny"}}]
    assert decision.actions[0] == {"id": "Cappucino", "features": [{"j": {"type": "hot"}}]}
    assert imported.reason == "observed" and imported.reward == 0.0


def test_bad_lines_name_their_line_number():
    with pytest.raises(LogError, match="line 2: not JSON"):
        list(read_dsjson(io.StringIO('{"x": 1}\n{nope\n'.replace('{"x": 1}', json.dumps(to_dsjson(example()))))))
    with pytest.raises(LogError, match="line 1: not a decision-service line"):
        list(read_dsjson(io.StringIO('{"EventId": "x"}\n')))


def test_times_are_epoch_seconds_or_iso_8601():
    assert parse_time("1700000000.5") == 1_700_000_000.5
    assert parse_time("2023-11-14T22:13:20") == 1_700_000_000
    assert parse_time("2023-11-14T23:13:20+01:00") == 1_700_000_000
    with pytest.raises(LogError, match="ISO 8601"):
        parse_time("yesterday")


def test_the_archive_is_read_by_loop_and_time_range(service):
    service.create_loop("food", rewardWaitTime=1)
    ranked = []
    for i in range(6):
        answer = service.client.post("/rank", json={"loop": "food", "contextFeatures": [{"i": i}], "actions": ACTIONS}).json
        ranked.append((answer["eventId"], time.time()))
        service.client.post("/reward", json={"eventId": answer["eventId"], "value": float(i % 2), "loop": "food"})
    service.advance(5)
    service.learn_all()
    with service.app.extensions["decide"].sessions() as session:
        log = loop_log(session, "food")
        assert [e.decision.event_id for e in log.examples] == [event_id for event_id, _ in ranked]
        assert [e.reward for e in log.examples] == [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
        assert log.config.rewardWaitTime == 1 and log.versions[0]["version"] >= 2
        assert len(loop_log(session, "food", limit=2).examples) == 2
        assert loop_log(session, "food", limit=2).examples[-1].decision.event_id == ranked[-1][0]
        assert loop_log(session, "food", until=log.examples[0].decision.timestamp).examples == []
        assert len(loop_log(session, "food", since=log.examples[3].decision.timestamp).examples) == 3
