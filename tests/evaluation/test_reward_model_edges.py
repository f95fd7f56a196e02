"""Edges of the reward model (``decide.evaluation.reward_model``): which model a loop gets, and its input messages."""

from __future__ import annotations

import numpy as np
import pytest

from decide.config import LoopConfig
from decide.evaluation.reward_model import RidgeRewardModel
from decide.policies import Batch
from decide.policies.params import NonFiniteInput


def test_a_loops_model_has_its_feature_dimension_and_its_policys_ridge():
    assert RidgeRewardModel.for_loop(LoopConfig(featureDimension=32, policy="linucb", policyParams={"ridge": 3.0})) == (
        RidgeRewardModel(32, 3.0)
    )
    assert RidgeRewardModel.for_loop(LoopConfig(featureDimension=8, policy="beta_thompson")) == RidgeRewardModel(8, 1.0)


def test_the_model_names_the_input_that_is_not_finite():
    model = RidgeRewardModel(2)
    ones = (np.ones((1, 2)), np.ones((1, 2)), np.ones(1), np.ones(1), np.ones(1))
    cases = {
        "rewards": Batch(("a",), ones[0], ones[1], np.array([np.nan]), ones[3], ones[4]),
        "weights": Batch(("a",), ones[0], ones[1], ones[2], ones[3], np.array([np.inf])),
        "features": Batch(("a",), ones[0], np.full((1, 2), np.nan), ones[2], ones[3], ones[4]),
    }
    for what, batch in cases.items():
        with pytest.raises(NonFiniteInput) as error:
            model.statistics(batch)
        assert str(error.value) == f"{what} contains a non-finite value"
