"""The whole service, over HTTP: learned policies beat uniform random on a linear-payoff population."""

from __future__ import annotations

import pytest

from simulations.environments import LinearPayoff

ROUNDS = 2000
EVALUATED = 800


def reward_rate(client, loop: str, policy: str, seed: int) -> float:
    """Mean reward over the last ``EVALUATED`` rounds of an online run."""
    client.request(
        "POST",
        "/loops",
        {"name": loop, "config": {"policy": policy, "rewardWaitTime": 2.0, "updateInterval": 0.3}},
    )
    environment = LinearPayoff(seed=seed)
    rewards = []
    for _ in range(ROUNDS):
        played = environment.next_round()
        answer = client.rank(played.context, played.actions, loop=loop)
        value = environment.reward(played, answer["rewardActionId"])
        client.reward(answer["eventId"], value, loop=loop)
        rewards.append(value)
    return sum(rewards[-EVALUATED:]) / EVALUATED


@pytest.mark.parametrize("policy", ["linucb", "linear_thompson"])
def test_learned_policy_beats_uniform_random_over_http(served, policy):
    uniform = reward_rate(served, "uniform", "uniform", seed=1)
    learned = reward_rate(served, policy, policy, seed=1)
    assert learned > uniform + 0.15, f"{policy} earned {learned:.3f} against uniform's {uniform:.3f}"
