"""The HTTP contract on SQLite and PostgreSQL: decisions, Personalizer paths, bad input, admin, health."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from decide.api import create_app
from decide.events.schemas import DECISIONS, decode
from decide.store.models import LogRecord
from tests.conftest import make_service

ACTIONS = [
    {"id": "news", "features": [{"topic": "politics", "length": 3}]},
    {"id": "sports", "features": [{"topic": "football", "length": 1}]},
    {"id": "weather", "features": {"topic": "weather"}},
]
CONTEXT = [{"user": {"tier": "gold", "age": 31, "mobile": True}}, {"time": {"hour": 9}}]


def logged(service, stream: str = DECISIONS) -> list:
    with service.app.extensions["decide"].sessions() as session:
        rows = session.scalars(select(LogRecord.value).where(LogRecord.stream == stream).order_by(LogRecord.partition, LogRecord.offset))
        return [decode(value) for value in rows]


def count_logged(service) -> int:
    with service.app.extensions["decide"].sessions() as session:
        return session.scalar(select(func.count()).select_from(LogRecord))


def test_rank_returns_a_distribution_and_logs_it_exactly(service):
    answers = [service.client.post("/rank", json={"contextFeatures": CONTEXT, "actions": ACTIONS, "excludedActions": ["weather"]}) for _ in range(20)]
    assert all(answer.status_code == 201 for answer in answers)
    by_event = {event.event_id: event for event in logged(service)}
    for answer in (a.json for a in answers):
        probabilities = {ranked["id"]: ranked["probability"] for ranked in answer["ranking"]}
        assert answer["ranking"][0]["id"] == answer["rewardActionId"]
        assert probabilities["weather"] == 0.0
        assert sum(probabilities.values()) == pytest.approx(1.0)
        decision = by_event[answer["eventId"]]
        assert dict(zip([a["id"] for a in decision.actions], decision.probabilities)) == probabilities
        assert decision.chosen == answer["rewardActionId"]
        assert decision.propensity == probabilities[answer["rewardActionId"]] > 0
        assert decision.policy_version == answer["policyVersion"]


def test_the_same_event_id_against_the_same_version_reproduces_the_decision(service):
    body = {"contextFeatures": CONTEXT, "actions": ACTIONS, "eventId": "order-17"}
    first = service.client.post("/rank", json=body).json
    again = service.client.post("/rank", json=body).json
    other_worker = create_app(service.settings, engine=service.engine).test_client().post("/rank", json=body).json
    assert first == again == other_worker
    choices = {service.client.post("/rank", json=body | {"eventId": f"order-{i}"}).json["rewardActionId"] for i in range(40)}
    assert len(choices) > 1, "different event ids must explore"


def test_personalizer_v1_paths_answer_like_personalizer(service):
    rank = service.client.post("/personalizer/v1.0/rank", json={"contextFeatures": CONTEXT, "actions": ACTIONS, "deferActivation": True})
    assert rank.status_code == 201
    assert set(rank.json) == {"eventId", "rewardActionId", "ranking", "policyVersion"}
    event_id = rank.json["eventId"]
    assert service.client.post(f"/personalizer/v1.0/events/{event_id}/activate").status_code == 204
    assert service.client.post(f"/personalizer/v1.0/events/{event_id}/reward", json={"value": 0.5}).status_code == 204
    kinds = [type(event).__name__ for event in logged(service, "rewards")]
    assert kinds == ["Activation", "Reward"]


def test_personalizer_preview_paths_take_the_api_version_query(service):
    rank = service.client.post("/personalizer/rank?api-version=2022-09-01-preview", json={"contextFeatures": CONTEXT, "actions": ACTIONS})
    assert rank.status_code == 201
    reward = service.client.post(f"/personalizer/events/{rank.json['eventId']}/reward?api-version=2022-09-01-preview", json={"value": 1})
    assert reward.status_code == 204


def test_subscription_keys_are_enforced_when_configured(database_url):
    service = make_service(database_url, api_keys=("secret",))
    body = {"actions": ACTIONS}
    refused = service.client.post("/personalizer/v1.0/rank", json=body)
    assert refused.status_code == 401 and refused.json["field"] == "Ocp-Apim-Subscription-Key"
    accepted = service.client.post("/personalizer/v1.0/rank", json=body, headers={"Ocp-Apim-Subscription-Key": "secret"})
    assert accepted.status_code == 201
    assert service.client.get("/healthz").status_code == 200
    service.engine.dispose()


BAD_RANKS = [
    ("{not json", "", 400),
    ("[]", "", 400),
    ({"contextFeatures": CONTEXT}, "actions", 400),
    ({"actions": []}, "actions", 400),
    ({"actions": [{"features": []}]}, "actions[0].id", 400),
    ({"actions": [{"id": ""}]}, "actions[0].id", 400),
    ({"actions": [{"id": 7}]}, "actions[0].id", 400),
    ({"actions": [{"id": "a"}, {"id": "a"}]}, "actions[1].id", 400),
    ({"actions": [{"id": f"a{i}"} for i in range(51)]}, "actions", 400),
    ({"actions": [{"id": "a"}], "excludedActions": ["b"]}, "excludedActions[0]", 400),
    ({"actions": [{"id": "a"}], "excludedActions": ["a"]}, "excludedActions", 400),
    ({"actions": [{"id": "a"}], "eventId": "x" * 300}, "eventId", 400),
    ({"actions": [{"id": "a"}], "deferActivation": "maybe"}, "deferActivation", 400),
    ({"actions": [{"id": "a"}], "contextFeatures": [{"x": 1e400}]}, "contextFeatures[0].x", 400),
    ({"actions": [{"id": "a", "features": [{"y": 1e300}]}], "contextFeatures": [{"x": 1e300}]}, "contextFeatures", 400),
    ({"actions": [{"id": "a"}], "contextFeatures": [{"x": 1e39}]}, "contextFeatures", 400),  # beyond single precision
    ('{"actions": [{"id": "a"}], "contextFeatures": [{"x": NaN}]}', "contextFeatures[0].x", 400),
    ({"actions": [{"id": "a", "features": [{"f": [{"nested": 1}]}]}]}, "actions[0].features[0].f[0]", 400),
    ({"actions": [{"id": "a"}], "loop": "no-such-loop"}, "loop", 404),
    ({"actions": [{"id": "a"}], "loop": "bad name!"}, "loop", 400),
    ({"actions": [{"id": "a"}], "surprise": 1}, "surprise", 400),
]


@pytest.mark.parametrize(("body", "field", "status"), BAD_RANKS)
def test_bad_rank_requests_get_a_problem_naming_the_field_and_log_nothing(service, body, field, status):
    data = body if isinstance(body, str) else json.dumps(body)
    answer = service.client.post("/rank", data=data, content_type="application/json")
    assert answer.status_code == status
    assert answer.mimetype == "application/problem+json"
    assert answer.json["status"] == status and answer.json["detail"]
    assert answer.json.get("field", "") == field
    assert count_logged(service) == 0


BAD_REWARDS = [
    ({"value": 1}, "eventId", 400),
    ({"eventId": "e"}, "value", 400),
    ({"eventId": "e", "value": "high"}, "value", 400),
    ('{"eventId": "e", "value": Infinity}', "value", 400),
    ({"eventId": "e", "value": 1, "loop": "nope"}, "loop", 404),
]


@pytest.mark.parametrize(("body", "field", "status"), BAD_REWARDS)
def test_bad_rewards_get_a_problem_and_log_nothing(service, body, field, status):
    data = body if isinstance(body, str) else json.dumps(body)
    answer = service.client.post("/reward", data=data, content_type="application/json")
    assert (answer.status_code, answer.mimetype, answer.json.get("field")) == (status, "application/problem+json", field)
    assert count_logged(service) == 0


def test_oversized_bodies_and_unknown_paths_are_problems_too(service):
    huge = {"actions": [{"id": "a"}], "contextFeatures": [{"blob": "x" * (300 * 1024)}]}
    too_big = service.client.post("/rank", json=huge)
    assert too_big.status_code == 413 and too_big.mimetype == "application/problem+json"
    assert service.client.get("/nowhere").status_code == 404
    wrong_method = service.client.get("/rank")
    assert wrong_method.status_code == 405 and "POST" in wrong_method.json["detail"]
    assert count_logged(service) == 0


def test_loop_administration(service):
    client = service.client
    created = client.post("/loops", json={"name": "offers", "config": {"policy": "linucb", "policyParams": {"alpha": 0.5}}})
    assert created.status_code == 201 and created.json["currentVersion"] == 1
    assert client.post("/loops", json={"name": "offers"}).status_code == 409
    bad = client.patch("/loops/offers/config", json={"rewardWaitTime": -1})
    assert (bad.status_code, bad.json["field"]) == (400, "config.rewardWaitTime")
    for config, field in (({"policy": []}, "config.policy"), ({"policyParams": {"alpha": -1}}, "config.policyParams")):
        refused = client.patch("/loops/offers/config", json=config)
        assert (refused.status_code, refused.json["field"]) == (400, field)
    bad_param = client.patch("/loops/offers/config", json={"policyParams": {"alpah": 1}})
    assert bad_param.status_code == 400 and "alpha" in bad_param.json["detail"]
    configured = client.patch("/loops/offers/config", json={"rewardWaitTime": 60})
    assert configured.json["version"] == 2 and configured.json["config"]["rewardWaitTime"] == 60
    assert client.post("/loops/offers/rollback", json={"version": 1}).json["config"]["rewardWaitTime"] == 600
    assert client.post("/loops/offers/reset").json["note"] == "reset"
    assert [v["version"] for v in client.get("/loops/offers/versions").json["versions"]] == [4, 3, 2, 1]
    assert client.post("/loops/offers/rollback", json={"version": 99}).status_code == 404
    assert client.get("/loops/offers").json["config"]["policy"] == "linucb"
    assert {loop["name"] for loop in client.get("/loops").json["loops"]} == {"default", "offers"}
    assert client.delete("/loops/offers").status_code == 204
    assert client.get("/loops/offers").status_code == 404


def test_health_readiness_metrics_and_openapi(service):
    client = service.client
    assert client.get("/healthz").json == {"status": "ok"}
    assert client.get("/readyz").json["status"] == "ready"
    client.post("/rank", json={"actions": ACTIONS})
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'decide_decisions_total{loop="default"} 1.0' in metrics
    assert "decide_http_request_seconds_bucket" in metrics
    document = client.get("/openapi.json").json
    assert document["openapi"].startswith("3.1")
    assert {"/rank", "/reward", "/personalizer/{apiVersion}/rank", "/loops/{name}/rollback", "/metrics"} <= set(document["paths"])
    assert "RankRequest" in document["components"]["schemas"]


def test_multi_slot_paths_are_not_mistaken_for_versions(service):
    for path in ("/personalizer/multislot/rank", "/personalizer/multislot/events/e1/activate"):
        answer = service.client.post(path, json={"actions": ACTIONS})
        assert answer.status_code == 404 and "not supported" in answer.json["detail"]
    assert count_logged(service) == 0


def test_not_found_is_spelled_one_way(service):
    answers = [
        service.client.get("/nowhere"),
        service.client.get("/loops/nope"),
        service.client.post("/rank", json={"loop": "nope", "actions": ACTIONS}),
        service.client.post("/personalizer/multislot/rank", json={"actions": ACTIONS}),
    ]
    assert {(answer.status_code, answer.json["title"]) for answer in answers} == {(404, "Not found")}
    assert answers[2].json["field"] == "loop" and "decide loops create nope" in answers[2].json["detail"]


def test_a_taken_loop_name_is_a_conflict_naming_the_field(service):
    service.create_loop("offers")
    again = service.client.post("/loops", json={"name": "offers"})
    assert (again.status_code, again.json["title"], again.json["field"]) == (409, "Loop exists", "name")
    assert "already exists" in again.json["detail"] and "PATCH /loops/offers/config" in again.json["detail"]


def test_rewards_that_name_no_loop_are_counted_under_a_label_no_loop_can_have(service):
    ranked = service.client.post("/rank", json={"actions": ACTIONS}).json
    assert service.client.post("/reward", json={"eventId": ranked["eventId"], "value": 1.0}).status_code == 202
    assert service.client.post("/reward", json={"eventId": ranked["eventId"], "value": 1.0, "loop": "default"}).status_code == 202
    metrics = service.client.get("/metrics").get_data(as_text=True)
    assert 'decide_rewards_total{loop="_unnamed"} 1.0' in metrics and 'decide_rewards_total{loop="default"} 1.0' in metrics
    assert 'loop=""' not in metrics


def test_loop_settings_read_the_same_whatever_number_was_sent(service):
    created = service.client.post("/loops", json={"name": "offers", "config": {"rewardWaitTime": 60, "discount": 1}}).json["config"]
    default = service.client.get("/loops/default").json["config"]
    assert created["rewardWaitTime"] == 60.0 and all(type(created[name]) is type(default[name]) for name in default)
    configured = service.client.patch("/loops/offers/config", json={"activationTimeout": 30}).json["config"]
    assert type(configured["activationTimeout"]) is float
