"""How a batch of joined examples is learned (``decide.learning``), against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from decide.config import LoopConfig
from decide.events.schemas import Decision
from decide.learning import batch_of, statistics_after, update_due


def decision(event_id: str, chosen: str, context: dict, probabilities: list[float]) -> Decision:
    actions = [{"id": "a", "features": {"colour": "red"}}, {"id": "b", "features": {"colour": "blue"}}]
    return Decision(event_id=event_id, loop="l", timestamp=0.0, policy_version=1, context=[context], actions=actions,
                    excluded=[], chosen=chosen, probabilities=probabilities)


DECISIONS = [
    decision("e0", "b", {"x": 1.0}, [0.3, 0.7]),
    decision("e1", "a", {"x": 2.0}, [0.6, 0.4]),
    decision("e2", "b", {"y": "z"}, [0.1, 0.9]),
]


def test_a_batch_holds_each_chosen_action_featurized_as_the_api_featurized_it():
    config = LoopConfig(featureDimension=32, discount=1.0)
    batch = batch_of(config, DECISIONS, [1, 0.5, 0])
    assert batch.action_ids == ("b", "a", "b")
    space = config.feature_space()
    for row, logged in enumerate(DECISIONS):
        served = space.action_set(logged.context, logged.actions)
        index = served.ids.index(logged.chosen)
        np.testing.assert_array_equal(batch.features[row], served.features[index])
        np.testing.assert_array_equal(batch.contexts[row], served.context)
    np.testing.assert_array_equal(batch.rewards, [1.0, 0.5, 0.0])
    np.testing.assert_array_equal(batch.propensities, [0.7, 0.6, 0.9])
    np.testing.assert_array_equal(batch.weights, [1.0, 1.0, 1.0])


def test_forgetting_weighs_the_i_th_of_n_examples_discount_to_the_n_minus_1_minus_i():
    batch = batch_of(LoopConfig(featureDimension=8, discount=0.5), DECISIONS, [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(batch.weights, [0.25, 0.5, 1.0])


def test_statistics_after_discounts_the_old_state_by_discount_to_the_n_and_adds_the_batch():
    config = LoopConfig(policy="beta_thompson", discount=0.5, featureDimension=8)
    # Chosen b, a, b with rewards 1, 1, 0.25; weights 0.25, 0.5, 1 (oldest first).
    state = {"successes/a": np.array([2.0]), "failures/b": np.array([4.0]), "failures/c": np.array([8.0])}
    after = statistics_after(config, config.build_policy(), state, DECISIONS, [1.0, 1.0, 0.25])
    expected = {
        "successes/a": 2.0 * 0.125 + 0.5,
        "failures/a": 0.0,
        "successes/b": 0.25 * 1.0 + 1.0 * 0.25,
        "failures/b": 4.0 * 0.125 + 1.0 * 0.75,
        "failures/c": 8.0 * 0.125,
    }
    assert {key: float(value[0]) for key, value in after.items()} == pytest.approx(expected, rel=1e-12)


def test_a_loop_may_learn_once_its_update_interval_has_passed_and_not_before():
    config = LoopConfig(updateInterval=10.0)
    assert update_due(config, 100.0, 110.0)
    assert update_due(config, 100.0, 125.0)
    assert not update_due(config, 100.0, 109.5)
    assert update_due(LoopConfig(updateInterval=0.0), 100.0, 100.0)
