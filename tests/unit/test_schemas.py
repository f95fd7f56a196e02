"""Event records survive encoding exactly, whatever JSON the API accepted."""

from decide.events.schemas import Decision, Reward, decode, encode


def test_a_decision_round_trips_with_integers_beyond_64_bits():
    decision = Decision(
        event_id="e1", loop="default", timestamp=1.5, policy_version=3,
        context=[{"big": 10**30, "nested": {"values": [1, 2**70]}}], actions=[{"id": "a", "features": [{"x": -(2**65)}]}],
        excluded=[], chosen="a", probabilities=[1.0],
    )
    assert decode(encode(decision)) == decision


def test_a_reward_round_trips():
    reward = Reward("e1", 0.25, 2.0, loop="default")
    assert decode(encode(reward)) == reward
