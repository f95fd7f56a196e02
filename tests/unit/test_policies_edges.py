"""Edges of the policies (``decide.policies``): configuration messages, Beta–Bernoulli counting and its prior,
ridge statistics per action, and the probability helpers, against values worked out by hand."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from decide.limits import MAX_FEATURE_DIMENSION, MAX_SAMPLES
from decide.policies import ActionSet, Batch, BetaThompson, LinearThompson, LinUCB, make_policy, merge
from decide.policies.params import NonFiniteInput
from decide.policies.linear import covariance_factor
from decide.policies.distributions import floor_mix, uniform_distribution
from decide.policies.params import check_real


def batch(action_ids: tuple[str, ...], rewards: list[float], weights: list[float] | None = None, d: int = 2) -> Batch:
    n = len(action_ids)
    return Batch(action_ids, np.ones((n, d)), np.ones((n, d)), np.array(rewards, dtype=float), np.full(n, 0.5),
                 None if weights is None else np.array(weights, dtype=float))


def actions(ids: tuple[str, ...], d: int = 2, eligible: list[bool] | None = None) -> ActionSet:
    k = len(ids)
    return ActionSet(ids, np.ones(d), np.ones((k, d)), np.ones(k, bool) if eligible is None else np.array(eligible))


# Configuration messages


def message(call, *args, **kwargs) -> str:
    with pytest.raises(ValueError) as error:
        call(*args, **kwargs)
    return str(error.value)


def test_range_messages_show_which_ends_are_open():
    assert message(check_real, "x", -1, 0.0, low_open=True) == "x must be a number in (0, inf), got -1"
    assert message(check_real, "x", 2, 0.0, 1.0) == "x must be a number in [0, 1], got 2"
    assert message(check_real, "x", 1.0, 0.0, 1.0, high_open=True) == "x must be a number in [0, 1), got 1.0"
    assert message(check_real, "x", 0.0, 0.0, 1.0, low_open=True, high_open=True) == "x must be a number in (0, 1), got 0.0"
    assert message(make_policy, "beta_thompson", 4, {"prior_alpha": 0}) == (
        "policy 'beta_thompson': prior_alpha must be a number in (0, inf), got 0"
    )


def test_several_unknown_parameters_are_all_named_and_a_policy_without_any_says_so():
    assert message(make_policy, "linucb", 4, {"alpah": 1, "flor": 0.1}) == (
        "policy 'linucb' has no parameters 'alpah', 'flor'; allowed: alpha, ridge, floor, per_action"
    )
    assert message(make_policy, "uniform", 4, {"floor": 0.1}) == "policy 'uniform' has no parameter 'floor'; allowed: none"


# Beta–Bernoulli Thompson sampling


def test_beta_thompson_clips_rewards_to_0_1_and_weighs_each_example():
    statistics = BetaThompson().statistics(batch(("a", "b", "a", "b"), [3.0, -2.0, 0.25, 0.5], [1.0, 2.0, 4.0, 0.5]))
    assert {key: float(value[0]) for key, value in statistics.items()} == {
        "successes/a": 1.0 + 4.0 * 0.25,
        "failures/a": 4.0 * 0.75,
        "successes/b": 0.5 * 0.5,
        "failures/b": 2.0 + 0.5 * 0.5,
    }


def test_beta_thompson_names_a_non_finite_input():
    policy = BetaThompson()
    assert message(policy.statistics, batch(("a",), [np.nan])) == "rewards contains a non-finite value"
    assert message(policy.statistics, batch(("a",), [1.0], [np.inf])) == "weights contains a non-finite value"


def test_beta_thompson_posterior_adds_the_prior_and_reads_ids_with_slashes():
    policy = BetaThompson(prior_alpha=2.0, prior_beta=3.0)
    snapshot = policy.snapshot({"successes/a/b": np.array([4.0]), "failures/a/b": np.array([1.0]),
                                "successes/only": np.array([5.0]), "failures/none": np.array([6.0])})
    assert {key: value.tolist() for key, value in snapshot.items()} == {
        "alpha/a/b": [6.0], "beta/a/b": [4.0],
        "alpha/only": [7.0], "beta/only": [3.0],
        "alpha/none": [2.0], "beta/none": [9.0],
    }


def test_beta_thompson_gives_an_unseen_action_its_prior():
    policy = BetaThompson(prior_alpha=1000.0, prior_beta=1.0, floor=0.0)
    snapshot = policy.snapshot(policy.statistics(batch(("seen",), [0.0], [5000.0])))
    p = policy.probabilities(snapshot, actions(("seen", "new")), np.random.default_rng(0))
    assert p.tolist() == [0.0, 1.0]
    policy = BetaThompson(prior_alpha=1.0, prior_beta=1000.0, floor=0.0)
    snapshot = policy.snapshot(policy.statistics(batch(("seen",), [1.0], [5000.0])))
    p = policy.probabilities(snapshot, actions(("seen", "new")), np.random.default_rng(0))
    assert p.tolist() == [1.0, 0.0]


def test_beta_thompson_estimates_from_all_its_samples():
    policy = BetaThompson(floor=0.0, samples=4096)
    p = policy.probabilities(policy.snapshot({}), actions(("a", "b")), np.random.default_rng(1))
    assert abs(p[0] - 0.5) < 0.05 and p.sum() == pytest.approx(1.0)
    assert (p * 4096 == np.round(p * 4096)).all(), "win frequencies are counts out of the samples"


@pytest.mark.parametrize(("name", "params", "expected"), [
    ("linucb", {"alpha": -0.5}, "alpha must be a number in [0, inf), got -0.5"),
    ("linucb", {"floor": 1}, "floor must be a number in [0, 1), got 1"),
    ("linucb", {"ridge": 0.0}, "ridge must be a number in (0, inf), got 0.0"),
    ("linucb", {"per_action": 1}, "per_action must be true or false, got 1"),
    ("linear_thompson", {"scale": -1}, "scale must be a number in [0, inf), got -1"),
    ("linear_thompson", {"floor": -0.1}, "floor must be a number in [0, 1), got -0.1"),
    ("linear_thompson", {"samples": 0}, f"samples must be an integer in [1, {MAX_SAMPLES}], got 0"),
    ("linear_thompson", {"samples": MAX_SAMPLES + 1}, f"samples must be an integer in [1, {MAX_SAMPLES}], got {MAX_SAMPLES + 1}"),
    ("epsilon_greedy", {"epsilon": 1.0}, "epsilon must be a number in [0, 1), got 1.0"),
    ("epsilon_greedy", {"epsilon": -0.01}, "epsilon must be a number in [0, 1), got -0.01"),
    ("beta_thompson", {"prior_beta": -1}, "prior_beta must be a number in (0, inf), got -1"),
    ("beta_thompson", {"floor": 1.0}, "floor must be a number in [0, 1), got 1.0"),
    ("beta_thompson", {"samples": True}, f"samples must be an integer in [1, {MAX_SAMPLES}], got True"),
    ("beta_thompson", {"samples": MAX_SAMPLES + 1}, f"samples must be an integer in [1, {MAX_SAMPLES}], got {MAX_SAMPLES + 1}"),
])
def test_every_parameter_out_of_range_is_refused_with_its_range(name, params, expected):
    assert message(make_policy, name, 4, params) == f"policy {name!r}: {expected}"


def test_a_policy_dimension_out_of_range_is_refused_with_its_range():
    for dimension in (0, MAX_FEATURE_DIMENSION + 1):
        assert message(make_policy, "epsilon_greedy", dimension, {}) == (
            f"policy 'epsilon_greedy': dimension must be an integer in [1, {MAX_FEATURE_DIMENSION}], got {dimension}"
        )


@pytest.mark.parametrize(("name", "params"), [
    ("linucb", {"alpha": 0, "floor": 0.0, "ridge": 1e-9}),
    ("linear_thompson", {"scale": 0.0, "floor": 0.999, "samples": 1}),
    ("linear_thompson", {"samples": MAX_SAMPLES}),
    ("epsilon_greedy", {"epsilon": 0.0}),
    ("epsilon_greedy", {"epsilon": 0.999}),
    ("beta_thompson", {"prior_alpha": 1e-9, "prior_beta": 1e-9, "floor": 0.0, "samples": MAX_SAMPLES}),
    ("beta_thompson", {"samples": 1, "floor": 0.999}),
])
def test_the_ends_of_every_range_are_accepted(name, params):
    policy = make_policy(name, 4, params)
    for key, value in params.items():
        assert getattr(policy, key) == value


# Linear Thompson sampling


def test_per_action_thompson_draws_each_score_with_its_own_posterior_spread():
    # Context c = (1, 0), ridge 1. Action a learned one example with reward 1: A = I + c cᵀ, so its score is
    # N(1/2, 1/2); action b is unseen: N(0, 1). P(a wins) = Φ((1/2) / √(3/2)).
    policy = LinearThompson(2, per_action=True, floor=0.0, samples=MAX_SAMPLES)
    learned = Batch(("a",), np.array([[1.0, 0.0]]), np.zeros((1, 2)), np.array([1.0]), np.array([0.5]))
    snapshot = policy.snapshot(policy.statistics(learned))
    candidates = ActionSet(("a", "b"), np.array([1.0, 0.0]), np.zeros((2, 2)), np.ones(2, bool))
    p = policy.probabilities(snapshot, candidates, np.random.default_rng(2))
    exact = 0.5 * (1.0 + math.erf(0.5 / math.sqrt(1.5) / math.sqrt(2.0)))
    assert abs(p[0] - exact) < 0.01 and p[0] + p[1] == pytest.approx(1.0)


def test_a_covariance_is_singular_when_a_pivot_is_at_most_1e_10_of_its_diagonal_entry():
    for share, singular in ((1e-12, True), (1e-8, False)):
        gram = 100.0 * np.array([[1.0, 1.0], [1.0, 1.0 + share]])
        factor = covariance_factor(gram)
        np.testing.assert_allclose(factor @ factor.T, gram, atol=1e-9)
        if singular:  # the eigendecomposition's factor
            values, vectors = np.linalg.eigh(gram)
            np.testing.assert_array_equal(factor, vectors * np.sqrt(np.clip(values, 0.0, None)))
        else:  # the Cholesky factor: lower triangular
            assert factor[0, 1] == 0.0
            np.testing.assert_allclose(factor, np.linalg.cholesky(gram), rtol=1e-12)


def test_a_positive_definite_covariance_is_factored_exactly():
    gram = np.array([[4.0, 2.0, 0.4], [2.0, 5.0, 1.0], [0.4, 1.0, 3.0]])
    factor = covariance_factor(gram)
    np.testing.assert_allclose(factor @ factor.T, gram, rtol=1e-12)
    assert np.array_equal(np.triu(factor, 1), np.zeros((3, 3)))


# Ridge statistics


def test_per_action_ridge_statistics_sum_each_actions_weighted_contexts():
    contexts = np.array([[1.0, 2.0], [0.0, 1.0], [3.0, 0.0]])
    learned = Batch(("b", "a", "b"), contexts, np.zeros((3, 2)), np.array([1.0, 2.0, -1.0]), np.full(3, 0.5),
                    np.array([0.5, 1.0, 2.0]))
    statistics = LinUCB(2, per_action=True).statistics(learned)
    expected = {
        "xx/a": [[0.0, 0.0], [0.0, 1.0]], "xr/a": [0.0, 2.0], "n/a": [1.0],
        "xx/b": [[0.5 + 18.0, 1.0], [1.0, 2.0]], "xr/b": [0.5 - 6.0, 1.0], "n/b": [2.5],
    }
    assert statistics.keys() == expected.keys()
    for key, value in expected.items():
        np.testing.assert_allclose(statistics[key], value, rtol=1e-15, err_msg=key)


@pytest.mark.parametrize("per_action", [False, True])
def test_linear_statistics_name_the_input_that_is_not_finite_or_of_the_wrong_shape(per_action):
    policy = LinUCB(2, per_action=per_action)
    good = Batch(("a",), np.ones((1, 2)), np.ones((1, 2)), np.ones(1), np.full(1, 0.5), np.ones(1))
    vectors = "contexts" if per_action else "features"
    cases = {
        "rewards": good.__class__(good.action_ids, good.contexts, good.features, np.array([np.inf]), good.propensities, good.weights),
        "weights": good.__class__(good.action_ids, good.contexts, good.features, good.rewards, good.propensities, np.array([np.nan])),
        vectors: good.__class__(good.action_ids, np.full((1, 2), np.nan), np.full((1, 2), np.nan), good.rewards, good.propensities, good.weights),
    }
    for what, bad in cases.items():
        with pytest.raises(NonFiniteInput) as error:
            policy.statistics(bad)
        assert str(error.value) == f"{what} contains a non-finite value"
    short = Batch(("a",), np.ones((1, 2)), np.ones((1, 2)), np.ones(2), np.full(1, 0.5))
    assert message(policy.statistics, short) == "rewards has shape (2,), expected (1,)"


def test_an_unseen_action_in_per_action_mode_has_the_prior_bound_alpha_norm_over_root_ridge():
    # Action a learned a million examples of context (1, 0): its bound is its reward, within 0.001. Unseen b's
    # bound under the prior (θ = 0, L = I/√λ) is ‖c‖/√λ = 1/2 at λ = 4.
    policy = LinUCB(2, alpha=1.0, ridge=4.0, floor=0.0, per_action=True)
    candidates = ActionSet(("a", "b"), np.array([1.0, 0.0]), np.zeros((2, 2)), np.ones(2, bool))
    for reward, best in ((0.7, [1.0, 0.0]), (0.45, [0.0, 1.0])):
        learned = Batch(("a",), np.array([[1.0, 0.0]]), np.zeros((1, 2)), np.array([reward]), np.ones(1), np.array([1e6]))
        snapshot = policy.snapshot(policy.statistics(learned))
        assert policy.probabilities(snapshot, candidates, np.random.default_rng(0)).tolist() == best


def test_scores_that_overflow_are_refused_without_a_numpy_warning():
    policy = LinUCB(2)
    snapshot = policy.snapshot(policy.statistics(Batch(("a",), np.ones((1, 2)), np.ones((1, 2)), np.ones(1), np.ones(1))))
    huge = ActionSet(("a", "b"), np.ones(2), np.array([[1e300, -1e300], [1.0, 1.0]]), np.ones(2, bool))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(NonFiniteInput) as error:
            policy.probabilities(snapshot, huge, np.random.default_rng(0))
    assert str(error.value) == "the action scores overflow: feature values are too large"


# Merging


def test_merge_refuses_a_discount_outside_0_1():
    state = {"x": np.ones(1)}
    for discount in (0.0, -0.5, 1.5):
        assert message(merge, state, state, discount) == f"discount must be in (0, 1], got {discount}"
    assert merge(state, state, 1.0)["x"].tolist() == [2.0]


def test_a_closed_upper_end_accepts_its_value():
    check_real("x", 1.0, 0.0, 1.0)
    check_real("x", 0.0, 0.0, 1.0)


def test_a_decision_without_eligible_actions_is_refused_in_words():
    none = np.zeros(3, bool)
    assert message(uniform_distribution, none) == "no eligible action"
    assert message(floor_mix, np.full(3, 1 / 3), none, 0.1) == "no eligible action"


def test_per_action_scores_name_a_context_of_the_wrong_size():
    policy = LinUCB(2, per_action=True)
    candidates = ActionSet(("a",), np.ones(3), np.ones((1, 2)), np.ones(1, bool))
    assert message(policy.probabilities, policy.snapshot({}), candidates, np.random.default_rng(0)) == (
        "context has shape (3,), expected (2,)"
    )


def test_a_snapshot_refuses_statistics_of_another_dimension():
    policy = LinUCB(2)
    for xx, xr in ((np.zeros((2, 2)), np.zeros(3)), (np.zeros((3, 3)), np.zeros(2))):
        assert message(policy.snapshot, {"xx": xx, "xr": xr}) == (
            f"statistics of shapes {xx.shape}, {xr.shape} are not of dimension 2"
        )


def test_a_per_action_snapshot_keeps_action_ids_with_slashes():
    policy = LinUCB(2, per_action=True)
    learned = Batch(("a/b", "c"), np.ones((2, 2)), np.ones((2, 2)), np.ones(2), np.ones(2))
    assert sorted(policy.snapshot(policy.statistics(learned))) == ["chol/a/b", "chol/c", "theta/a/b", "theta/c"]
