"""Event records survive encoding exactly, whatever JSON the API accepted."""

from decide.events.schemas import Decision, Reward, decode, encode


def test_integers_beyond_64_bits_come_back_as_the_floats_featurization_uses():
    decision = Decision(
        event_id="e1", loop="default", timestamp=1.5, policy_version=3,
        context=[{"big": 10**30, "nested": {"values": [1, 2**70]}}], actions=[{"id": "a", "features": [{"x": -(2**65)}]}],
        excluded=[], chosen="a", probabilities=[1.0],
    )
    decoded = decode(encode(decision))
    assert decoded.context == [{"big": float(10**30), "nested": {"values": [1, float(2**70)]}}]
    assert decoded.actions == [{"id": "a", "features": [{"x": float(-(2**65))}]}]
    assert (decoded.event_id, decoded.chosen, decoded.probabilities) == ("e1", "a", [1.0])


def test_a_reward_round_trips():
    reward = Reward("e1", 0.25, 2.0, loop="default")
    assert decode(encode(reward)) == reward
