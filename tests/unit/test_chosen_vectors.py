"""Learning featurizes a batch of logged decisions at once; it must see exactly what serving saw."""

from __future__ import annotations

import random

import numpy as np
import pytest

from decide.features import FeatureSpace


def decision(rng: random.Random) -> tuple[list, dict]:
    """A Personalizer-shaped context and one action: namespaces, strings, numbers, lists, booleans, ignored keys."""
    context = [
        {"user": {"tier": rng.choice(["gold", "silver"]), "age": rng.randint(18, 80), "_ignored": 1}},
        {"device": {"os": rng.choice(["ios", "android"]), "screen": [rng.random(), None, rng.random()]}},
        {"session": {"tags": rng.sample(["a", "b", "c", "d"], rng.randint(0, 3)), "new": rng.random() < 0.5}},
    ][: rng.randint(0, 3)]
    action = {"id": f"article-{rng.randint(0, 30)}"}
    if rng.random() < 0.8:
        action["features"] = [{"topic": rng.choice(["news", "sport"]), "stats": {"ctr": rng.random()}}]
    return context, action


@pytest.mark.parametrize("interactions", [True, False])
@pytest.mark.parametrize("dimension", [2, 64, 256])
def test_chosen_vectors_equal_each_decisions_action_set_bit_for_bit(interactions, dimension):
    rng = random.Random(dimension)
    decisions = [decision(rng) for _ in range(200)]
    space = FeatureSpace(dimension=dimension, interactions=interactions)
    contexts, features = space.chosen_vectors(decisions)
    for row, (context, action) in enumerate(decisions):
        served = space.action_set(context, [action])
        assert np.array_equal(contexts[row], served.context)
        assert np.array_equal(features[row], served.features[0])


def test_no_decisions_give_empty_arrays_of_the_right_width():
    contexts, features = FeatureSpace(dimension=16).chosen_vectors([])
    assert contexts.shape == features.shape == (0, 16)
