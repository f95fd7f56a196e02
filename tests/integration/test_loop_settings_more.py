"""The loop settings test_loop_settings.py leaves out, through the same real path: API → event log → worker → learner → served version.

Every test here fails when decide ignores the setting it is about: it compares
the setting's effect with what the same traffic does without it (or with another
value). docs/settings-coverage.md lists the mutation each was checked against.
"""

from __future__ import annotations

import pytest

from tests.integration.test_loop_settings import ACTIONS, favourite, learn, loop_info, probabilities, rank

SEGMENT = {"new": [{"user": {"segment": "new"}}], "returning": [{"user": {"segment": "returning"}}]}
GREEDY = {"policy": "linucb", "policyParams": {"alpha": 0.01}, "rewardWaitTime": 5, "updateInterval": 0.01}
"""A loop whose favourite is the action with the best estimate, learning every example at once."""


def decided(service, loop: str, action: str, **extra) -> str:
    """A decision of ``loop`` that can only choose ``action``; returns its event id."""
    others = [other["id"] for other in ACTIONS if other["id"] != action]
    answer = rank(service, loop, excludedActions=others, **extra)
    assert answer["rewardActionId"] == action
    return answer["eventId"]


def reward(service, event_id: str, value: float) -> int:
    return service.client.post("/reward", json={"eventId": event_id, "value": value}).status_code


def test_policy_params_reach_the_served_policy(service):
    service.create_loop("eager", policy="epsilon_greedy", policyParams={"epsilon": 0.6}, rewardWaitTime=5, updateInterval=0.01)
    service.create_loop("usual", policy="epsilon_greedy", rewardWaitTime=5, updateInterval=0.01)
    for loop in ("eager", "usual"):
        for _ in range(5):
            assert reward(service, decided(service, loop, "a"), 1.0) == 202
    learn(service)
    assert loop_info(service, "eager")["examplesLearned"] == 5
    assert sorted(probabilities(rank(service, "eager")).values()) == pytest.approx([0.2, 0.2, 0.6])
    assert sorted(probabilities(rank(service, "usual")).values()) == pytest.approx([0.1 / 3, 0.1 / 3, 0.9 + 0.1 / 3])


def test_default_reward_is_what_an_unrewarded_decision_is_learned_with(service):
    """a is never rewarded, b always gets 0.5: a loop whose default reward is 1 comes to prefer a, the usual one b."""
    service.create_loop("hopeful", **GREEDY, defaultReward=1.0)
    service.create_loop("usual", **GREEDY)
    for loop in ("hopeful", "usual"):
        for _ in range(10):
            decided(service, loop, "a")
            assert reward(service, decided(service, loop, "b"), 0.5) == 202
    learn(service)
    assert loop_info(service, "hopeful")["examplesLearned"] == loop_info(service, "usual")["examplesLearned"] == 20
    assert favourite(rank(service, "hopeful", excludedActions=["c"])) == "a"
    assert favourite(rank(service, "usual", excludedActions=["c"])) == "b"


def test_sum_aggregation_learns_the_sum_of_a_decisions_rewards(service):
    """Each a decision gets two rewards of 0.4, each b decision one of 0.6: summed, a is better; first reward only, b is."""
    service.create_loop("summed", **GREEDY, rewardAggregation="sum")
    service.create_loop("first", **GREEDY, rewardAggregation="earliest")
    for loop in ("summed", "first"):
        for _ in range(10):
            event_id = decided(service, loop, "a")
            assert reward(service, event_id, 0.4) == reward(service, event_id, 0.4) == 202
            assert reward(service, decided(service, loop, "b"), 0.6) == 202
    learn(service)
    assert loop_info(service, "summed")["examplesLearned"] == loop_info(service, "first")["examplesLearned"] == 20
    assert favourite(rank(service, "summed", excludedActions=["c"])) == "a"
    assert favourite(rank(service, "first", excludedActions=["c"])) == "b"


def test_rewards_after_the_reward_wait_time_are_not_learned(service):
    """a's rewards (1.0) come 10 s after its decisions, b's (0.5) at once: a loop that waits 5 s never sees a's, one that waits 60 s does."""
    service.create_loop("hasty", **GREEDY)
    service.create_loop("patient", **{**GREEDY, "rewardWaitTime": 60})
    late: dict[str, list[str]] = {"hasty": [], "patient": []}
    for loop in late:
        for _ in range(10):
            late[loop].append(decided(service, loop, "a"))
            assert reward(service, decided(service, loop, "b"), 0.5) == 202
    learn(service, waited=10)
    assert loop_info(service, "hasty")["examplesLearned"] == 20
    assert loop_info(service, "patient")["examplesLearned"] == 0
    assert {reward(service, event_id, 1.0) for event_id in late["hasty"]} == {410}
    assert {reward(service, event_id, 1.0) for event_id in late["patient"]} == {202}
    learn(service, waited=100)
    assert loop_info(service, "patient")["examplesLearned"] == 20
    assert favourite(rank(service, "patient", excludedActions=["c"])) == "a"
    assert favourite(rank(service, "hasty", excludedActions=["c"])) == "b"


def test_a_deferred_decision_is_learned_only_if_activated_within_the_activation_timeout(service):
    service.create_loop("brief", **GREEDY, activationTimeout=5)
    service.create_loop("lenient", **GREEDY, activationTimeout=60)
    waiting = {loop: [decided(service, loop, "a", deferActivation=True) for _ in range(3)] for loop in ("brief", "lenient")}
    learn(service, waited=10)
    for loop, expected in (("brief", 410), ("lenient", 202)):
        for event_id in waiting[loop]:
            assert service.client.post("/activate", json={"eventId": event_id}).status_code == expected
            assert reward(service, event_id, 1.0) == expected
    learn(service, waited=20)
    assert (loop_info(service, "lenient")["currentVersion"], loop_info(service, "lenient")["examplesLearned"]) == (2, 3)
    assert (loop_info(service, "brief")["currentVersion"], loop_info(service, "brief")["examplesLearned"]) == (1, 0)


def test_feature_dimension_sets_the_shape_of_the_learned_and_served_state(service):
    from decide.store import queries
    from decide.store.arrays import unpack

    service.create_loop("narrow", **GREEDY, featureDimension=16)
    service.create_loop("usual", **GREEDY)
    for loop in ("narrow", "usual"):
        for _ in range(3):
            assert reward(service, decided(service, loop, "a"), 1.0) == 202
    learn(service)
    served = service.app.extensions["decide"].decider.policies
    for loop, dimension in (("narrow", 16), ("usual", 256)):
        assert loop_info(service, loop)["examplesLearned"] == 3
        assert favourite(rank(service, loop)) == "a"
        assert served.get(loop).snapshot["theta"].shape == (dimension,)
        with service.app.extensions["decide"].sessions() as session:
            statistics = unpack(queries.current(session, loop).statistics)
        assert {array.shape for array in statistics.values() if array.ndim == 2} == {(dimension, dimension)}


def test_without_interactions_a_shared_loop_ignores_the_context(service):
    """a pays for new users, b for returning ones: with interactions the loop learns that; without, it ranks alike for both."""
    service.create_loop("crossed", **GREEDY)
    service.create_loop("flat", **GREEDY, interactions=False)
    pays = {"new": "a", "returning": "b"}
    for loop in ("crossed", "flat"):
        for segment, context in SEGMENT.items():
            for action in ("a", "b"):
                for _ in range(5):
                    event_id = decided(service, loop, action, contextFeatures=context)
                    assert reward(service, event_id, 1.0 if action == pays[segment] else 0.0) == 202
    learn(service)
    assert loop_info(service, "flat")["examplesLearned"] == 20
    crossed = {segment: rank(service, "crossed", contextFeatures=context, excludedActions=["c"]) for segment, context in SEGMENT.items()}
    flat = {segment: rank(service, "flat", contextFeatures=context, excludedActions=["c"]) for segment, context in SEGMENT.items()}
    assert {segment: favourite(answer) for segment, answer in crossed.items()} == pays
    assert probabilities(flat["new"]) == pytest.approx(probabilities(flat["returning"]))
