"""``decide serve`` as an operator sees it: fresh versions reach every API worker quickly; metrics add up."""

from __future__ import annotations

import time

ACTIONS = [{"id": "a"}, {"id": "b"}]


def test_a_learned_version_is_served_within_about_a_second(served):
    wait = 0.3
    served.request("POST", "/loops", {"name": "fresh", "config": {"rewardWaitTime": wait, "updateInterval": 0.1}})
    answer = served.rank([{"user": {"tier": "gold"}}], ACTIONS, loop="fresh")
    assert answer["policyVersion"] == 1
    served.reward(answer["eventId"], 1.0, loop="fresh")
    accepted = time.monotonic()
    while time.monotonic() - accepted < 10:
        if all(served.rank([{"user": {"tier": "gold"}}], ACTIONS, loop="fresh")["policyVersion"] > 1 for _ in range(8)):
            break
        time.sleep(0.02)
    fresh_after = time.monotonic() - accepted - wait
    assert fresh_after < 1.5, f"the version learned from the reward was served {fresh_after:.2f} s after the wait"


def test_metrics_cover_every_api_worker_and_the_learner(served):
    served.request("POST", "/loops", {"name": "counted", "config": {"rewardWaitTime": 1.0, "updateInterval": 0.1}})
    for _ in range(30):
        answer = served.rank([{"user": {"tier": "gold"}}], ACTIONS, loop="counted")
        served.reward(answer["eventId"], 1.0, loop="counted")
    deadline = time.monotonic() + 10
    text = ""
    while time.monotonic() < deadline:
        served.connection.request("GET", "/metrics")
        text = served.connection.getresponse().read().decode()
        if 'decide_pipeline_examples_total{reason="observed"} 30.0' in text:
            break
        time.sleep(0.2)
    assert 'decide_decisions_total{loop="counted"} 30.0' in text
    assert 'decide_pipeline_examples_total{reason="observed"} 30.0' in text
