"""Deferred activation on every path that documents it, and readiness without the default loop."""

from __future__ import annotations

CONTEXT = [{"user": {"segment": "new"}}]
ACTIONS = [{"id": "a"}, {"id": "b"}]
LOOP = {"rewardWaitTime": 5, "activationTimeout": 30, "updateInterval": 0.01}


def deferred(service, loop: str = "deferring") -> str:
    """A deferred decision of ``loop``, rewarded at once; returns its event id."""
    answer = service.client.post("/rank", json={"loop": loop, "contextFeatures": CONTEXT, "actions": ACTIONS, "deferActivation": True})
    assert answer.status_code == 201, answer.json
    event_id = answer.json["eventId"]
    assert service.client.post("/reward", json={"eventId": event_id, "value": 1.0}).status_code == 202
    return event_id


def learned(service, loop: str = "deferring") -> int:
    return service.client.get(f"/loops/{loop}").json["examplesLearned"]


def test_activated_decisions_are_learned_and_the_others_never(service):
    service.create_loop("deferring", **LOOP)
    activated = [deferred(service) for _ in range(3)]
    unactivated = [deferred(service) for _ in range(2)]
    for event_id in activated:
        answer = service.client.post("/activate", json={"eventId": event_id, "loop": "deferring"})
        assert (answer.status_code, answer.json) == (202, {"eventId": event_id, "status": "accepted"})
    service.advance(10)
    service.learn_all()
    assert learned(service) == 3
    service.advance(60)
    service.learn_all()
    assert learned(service) == 3, "decisions never activated must not be learned, even after their activation timeout"
    for event_id in activated + unactivated:
        late = service.client.post("/activate", json={"eventId": event_id})
        assert (late.status_code, late.json["field"]) == (410, "eventId")


def test_personalizer_activate_paths_activate_and_ignore_closed_events(service):
    service.create_loop("deferring", **LOOP)
    v1, preview = deferred(service), deferred(service)
    assert service.client.post(f"/personalizer/v1.0/events/{v1}/activate").status_code == 204
    assert service.client.post(f"/personalizer/events/{preview}/activate?api-version=2022-09-01-preview").status_code == 204
    service.advance(10)
    service.learn_all()
    assert learned(service) == 2
    assert service.client.post(f"/personalizer/events/{preview}/activate?api-version=2022-09-01-preview").status_code == 204


def test_readiness_fails_while_the_default_loop_is_missing(service):
    assert service.client.get("/readyz").status_code == 200
    assert service.client.delete(f"/loops/{service.settings.default_loop}").status_code == 204
    missing = service.client.get("/readyz")
    assert missing.status_code == 503 and service.settings.default_loop in missing.json["detail"]
    service.create_loop(service.settings.default_loop)
    assert service.client.get("/readyz").status_code == 200
