"""The model registry through the API and the CLI, on SQLite and PostgreSQL; model loops without backends."""

from __future__ import annotations

import json

from click.testing import CliRunner

from decide.cli import main
from tests.serving.conftest import decisions

SPEC = {"target": "simulations.model_routing:small", "inputs": ["task^x0"]}


def test_register_list_show_update_and_remove_through_the_api(service):
    client = service.client
    created = client.post("/models", json={"name": "small", **SPEC, "replicas": 2})
    assert created.status_code == 201, created.json
    assert created.json["version"] == 1 and created.json["config"]["replicas"] == 2
    assert created.json["config"]["latencyObjectiveMs"] == 50.0, "defaults are filled in"
    assert client.post("/models", json={"name": "small", **SPEC}).status_code == 409
    assert [model["name"] for model in client.get("/models").json["models"]] == ["small"]
    shown = client.get("/models/small").json
    assert shown["backends"] == [{"replica": 0, "up": False}, {"replica": 1, "up": False}], "nothing serves it here"
    updated = client.patch("/models/small", json={"maxBatchSize": 8})
    assert updated.status_code == 200 and updated.json["version"] == 2 and updated.json["config"]["maxBatchSize"] == 8
    assert client.patch("/models/small", json={}).json["version"] == 3, "an empty change reloads the code as a new version"
    assert client.delete("/models/small").status_code == 204
    assert client.get("/models/small").status_code == 404
    assert client.delete("/models/small").status_code == 404


def test_bad_model_settings_are_refused_with_the_field_named(service):
    client = service.client
    cases = [
        ({"name": "m", "target": "not an import path"}, "target"),
        ({"name": "m", "target": "model.onnx", "kind": "onnx"}, "inputs"),
        ({"name": "m", **SPEC, "replicas": 0}, "replicas"),
        ({"name": "m", **SPEC, "latencyObjectiveMs": -1}, "latencyObjectiveMs"),
        ({"name": "m", **SPEC, "fallback": "no spaces allowed"}, "fallback"),
        ({"name": "bad/name", **SPEC}, "name"),
        ({"name": "m", **SPEC, "colour": "blue"}, "colour"),
    ]
    for body, field in cases:
        response = client.post("/models", json=body)
        assert response.status_code == 400, body
        assert response.json["field"] == field, (body, response.json)
    assert "feature names" in client.post("/models", json=cases[1][0]).json["detail"]
    client.post("/models", json={"name": "m", **SPEC})
    response = client.patch("/models/m", json={"maxWaitMs": "soon"})
    assert response.status_code == 400 and response.json["field"] == "maxWaitMs"
    assert client.patch("/models/m", json=[1]).status_code == 400
    assert client.get("/models/m").json["version"] == 1, "a refused change writes nothing"


def test_model_loop_settings_are_checked(service):
    response = service.client.post("/loops", json={"name": "x", "config": {"models": "small"}})
    assert response.status_code == 400 and response.json["field"] == "config.models"
    response = service.client.post("/loops", json={"name": "x", "config": {"models": ["a", "a"]}})
    assert response.status_code == 400


def test_plain_loops_answer_as_before_and_model_loops_answer_even_without_backends(service):
    plain = service.client.post("/rank", json={"actions": [{"id": "a"}, {"id": "b"}]}).json
    assert set(plain) == {"eventId", "rewardActionId", "ranking", "policyVersion", "loop"}
    personalizer = service.client.post("/personalizer/v1.0/rank", json={"actions": [{"id": "a"}]}).json
    assert set(personalizer) == {"eventId", "rewardActionId", "ranking", "policyVersion"}

    service.client.post("/models", json={"name": "small", **SPEC, "default": -1, "deadlineMs": 100})
    service.create_loop("routed", models=["small", "gone"])
    wrong = service.client.post("/rank", json={"loop": "routed", "actions": [{"id": "small"}, {"id": "other"}]})
    assert wrong.status_code == 400 and wrong.json["field"] == "actions[1].id"
    down = service.client.post("/rank", json={"loop": "routed", "actions": [{"id": "small"}]}).json
    assert down["prediction"] == -1 and down["fallback"] == {"reason": "unavailable", "answeredBy": None}
    gone = service.client.post("/rank", json={"loop": "routed", "actions": [{"id": "gone"}]}).json
    assert gone["prediction"] is None and gone["fallback"] == {"reason": "unregistered", "answeredBy": None}
    logged = decisions(service)
    assert logged[plain["eventId"]].fallback is None and logged[plain["eventId"]].prediction is None
    assert (logged[down["eventId"]].fallback, logged[down["eventId"]].prediction) == ("unavailable", -1)
    assert logged[gone["eventId"]].fallback == "unregistered"
    reward = service.client.post("/reward", json={"eventId": down["eventId"], "value": 1.0})
    assert reward.status_code == 202, "a model loop's decisions are rewarded as usual"


def test_the_models_commands(database_url):
    def run(*arguments: str) -> str:
        result = CliRunner().invoke(main, [*arguments, "--database-url", database_url], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    run("migrate")
    registered = json.loads(run("models", "register", "small", SPEC["target"], "--set", 'inputs=["task^x0"]', "--set", "replicas=2"))
    assert registered["version"] == 1 and registered["config"]["replicas"] == 2
    assert [model["name"] for model in json.loads(run("models", "list"))] == ["small"]
    assert json.loads(run("models", "update", "small", "--set", "maxBatchSize=16"))["config"]["maxBatchSize"] == 16
    shown = json.loads(run("models", "show", "small", "--backend-dir", "/nonexistent"))
    assert shown["version"] == 2 and [backend["up"] for backend in shown["backends"]] == [False, False]
    assert "removed" in run("models", "remove", "small")
    missing = CliRunner().invoke(main, ["models", "show", "small", "--database-url", database_url])
    assert missing.exit_code == 1 and "no model named 'small'" in missing.output
    invalid = CliRunner().invoke(main, ["models", "register", "x", "nope", "--database-url", database_url])
    assert invalid.exit_code == 2 and "import path" in invalid.output
