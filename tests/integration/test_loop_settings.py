"""Each loop setting, through the real path: API → event log → worker → learner → the version the API serves.

Every test here fails when decide ignores the setting it is about: it compares
the setting's effect with what the same traffic does without it.
"""

from __future__ import annotations

import pytest

CONTEXT = [{"user": {"segment": "returning"}}]
ACTIONS = [{"id": "a", "features": {"kind": "a"}}, {"id": "b", "features": {"kind": "b"}}, {"id": "c", "features": {"kind": "c"}}]


def rank(service, loop: str, **extra) -> dict:
    answer = service.client.post("/rank", json={"loop": loop, "contextFeatures": CONTEXT, "actions": ACTIONS, **extra})
    assert answer.status_code == 201, answer.json
    return answer.json


def rewarded(service, loop: str, action: str, value: float, times: int) -> None:
    """``times`` decisions that can only choose ``action``, each rewarded ``value``."""
    others = [other["id"] for other in ACTIONS if other["id"] != action]
    for _ in range(times):
        answer = rank(service, loop, excludedActions=others)
        assert answer["rewardActionId"] == action
        assert service.client.post("/reward", json={"eventId": answer["eventId"], "value": value}).status_code in (200, 202)


def learn(service, waited: float = 10.0) -> None:
    """Let every open join close and the worker learn what it can."""
    service.advance(waited)
    service.learn_all()


def loop_info(service, loop: str) -> dict:
    return service.client.get(f"/loops/{loop}").json


def probabilities(answer: dict) -> dict[str, float]:
    return {ranked["id"]: ranked["probability"] for ranked in answer["ranking"]}


def favourite(answer: dict) -> str:
    """The action the policy gives the most probability (the ranking puts the chosen one first, which exploration may pick)."""
    chances = probabilities(answer)
    return max(chances, key=chances.__getitem__)


def test_the_exploration_floor_holds_in_every_version_served(service):
    service.create_loop("floored", policy="linucb", explorationFloor=0.3, rewardWaitTime=5, updateInterval=0.01)
    service.create_loop("usual", policy="linucb", rewardWaitTime=5, updateInterval=0.01)
    for loop in ("floored", "usual"):
        rewarded(service, loop, "a", 1.0, 10)
    learn(service)
    assert loop_info(service, "floored")["examplesLearned"] == 10
    floored = sorted(probabilities(rank(service, "floored")).values())
    usual = sorted(probabilities(rank(service, "usual")).values())
    assert floored == pytest.approx([0.3 / 3, 0.3 / 3, 0.7 + 0.3 / 3])
    assert usual == pytest.approx([0.05 / 3, 0.05 / 3, 0.95 + 0.05 / 3])


def test_a_loop_learns_no_more_often_than_its_update_interval(service):
    service.create_loop("slow", rewardWaitTime=5, updateInterval=300)
    service.create_loop("fast", rewardWaitTime=5, updateInterval=1)
    for loop in ("slow", "fast"):
        rewarded(service, loop, "a", 1.0, 5)
    learn(service, waited=20)
    assert (loop_info(service, "fast")["currentVersion"], loop_info(service, "fast")["examplesLearned"]) == (2, 5)
    assert (loop_info(service, "slow")["currentVersion"], loop_info(service, "slow")["examplesLearned"]) == (1, 0)
    learn(service, waited=300)
    assert (loop_info(service, "slow")["currentVersion"], loop_info(service, "slow")["examplesLearned"]) == (2, 5)


def test_discount_forgets_what_was_learned_in_earlier_versions(service):
    """Action a paid in the first update and stopped paying in the second; b pays a little in the second.

    Without forgetting the first update still outweighs the second, and a stays the
    best; a loop that discounts by 0.9 per example has all but forgotten it, and
    turns to b. (c, never tried, is left out of the comparison: its score is the
    shared context terms' alone, and how they split depends on the examples' order.) Both updates must be separate versions: the discount applies
    between versions as well as within one.
    """
    settings = {"policy": "linucb", "policyParams": {"alpha": 0.01}, "rewardWaitTime": 5, "updateInterval": 0.01}
    service.create_loop("steady", **settings)
    service.create_loop("forgetful", **settings, discount=0.9)
    for loop in ("steady", "forgetful"):
        rewarded(service, loop, "a", 1.0, 20)
    learn(service)
    for loop in ("steady", "forgetful"):
        for _ in range(20):
            rewarded(service, loop, "a", 0.0, 1)
            rewarded(service, loop, "b", 0.3, 1)
    learn(service)
    assert loop_info(service, "steady")["currentVersion"] == loop_info(service, "forgetful")["currentVersion"] == 3
    assert favourite(rank(service, "steady", excludedActions=["c"])) == "a"
    assert favourite(rank(service, "forgetful", excludedActions=["c"])) == "b"


def test_only_the_newest_keep_versions_are_kept(service):
    service.create_loop("kept", keepVersions=3, rewardWaitTime=5, updateInterval=0.01)
    for value in (0.0, 1.0, 0.5):
        rewarded(service, "kept", "a", value, 2)
        learn(service)
    service.client.patch("/loops/kept/config", json={"defaultReward": 0.1})
    versions = [row["version"] for row in service.client.get("/loops/kept/versions").json["versions"]]
    assert versions == [5, 4, 3]
    assert service.client.post("/loops/kept/rollback", json={"version": 2}).status_code == 404
    assert loop_info(service, "kept")["examplesLearned"] == 6
