"""The whole service, over HTTP: learned policies beat uniform random and the best context-free choice."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from simulations.environments import LinearPayoff

ROUNDS = 2000
EVALUATED = 800


@dataclass(frozen=True)
class Run:
    earned: float
    """Mean reward over the last ``EVALUATED`` rounds."""
    best_fixed: float
    """Mean expected reward over the same rounds of the single action best on them: the most a policy that ignores context can earn."""


def online_run(client, loop: str, policy: str, seed: int) -> Run:
    client.request(
        "POST",
        "/loops",
        {"name": loop, "config": {"policy": policy, "rewardWaitTime": 2.0, "updateInterval": 0.3}},
    )
    environment = LinearPayoff(seed=seed)
    rewards, expected = [], []
    for _ in range(ROUNDS):
        played = environment.next_round()
        answer = client.rank(played.context, played.actions, loop=loop)
        value = environment.reward(played, answer["rewardActionId"])
        client.reward(answer["eventId"], value, loop=loop)
        rewards.append(value)
        expected.append(played.expected)
    evaluated = expected[-EVALUATED:]
    best_fixed = max(sum(round_[action] for round_ in evaluated) / EVALUATED for action in evaluated[0])
    return Run(sum(rewards[-EVALUATED:]) / EVALUATED, best_fixed)


@pytest.mark.parametrize("policy", ["linucb", "linear_thompson"])
def test_learned_policy_beats_uniform_and_every_context_free_choice_over_http(served, policy):
    uniform = online_run(served, "uniform", "uniform", seed=1)
    learned = online_run(served, policy, policy, seed=1)
    assert learned.best_fixed == uniform.best_fixed, "both runs must see the same contexts"
    assert learned.earned > uniform.earned + 0.15, f"{policy} earned {learned.earned:.3f} against uniform's {uniform.earned:.3f}"
    assert learned.earned > learned.best_fixed + 0.1, (
        f"{policy} earned {learned.earned:.3f}: not clearly above {learned.best_fixed:.3f}, what always choosing one action earns"
    )
