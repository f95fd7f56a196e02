"""The estimators are unbiased where theory says so, and agree with hand computation on a tiny log."""

from __future__ import annotations

import numpy as np
import pytest

from decide.evaluation.estimators import (
    IPS,
    SNIPS,
    Diagnostics,
    DirectMethod,
    DoublyRobust,
    Evidence,
    EvidenceBuilder,
    estimators,
)
from decide.evaluation.reward_model import RidgeRewardModel
from decide.policies import Batch, EpsilonGreedy

ACTIONS, DIMENSION = 3, 6
BETA = np.random.default_rng(123).normal(size=DIMENSION) / np.sqrt(DIMENSION)
GAMMA = np.random.default_rng(7).normal(size=DIMENSION)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def logging_policy(x: np.ndarray) -> np.ndarray:
    """Prefers actions the target does not: importance weights spread from about 0.04 to 9."""
    return 0.7 * softmax(x @ GAMMA) + 0.3 / ACTIONS


def target_policy(x: np.ndarray) -> np.ndarray:
    return 0.9 * softmax(6 * x @ BETA) + 0.1 / ACTIONS


def true_value() -> float:
    """E[Σₐ π(a|x) xₐ·β] by a Monte Carlo sample far larger than any log below."""
    x = np.random.default_rng(999).normal(size=(400_000, ACTIONS, DIMENSION))
    return float((target_policy(x) * (x @ BETA)).sum(1).mean())


def evidence(
    features: np.ndarray, chosen: np.ndarray, propensities: np.ndarray, rewards: np.ndarray, target: np.ndarray, folds: int = 3
) -> Evidence:
    builder = EvidenceBuilder(RidgeRewardModel(dimension=features.shape[2]), targets=1, folds=folds)
    for rows in np.array_split(np.arange(len(chosen)), min(len(chosen), 200)):
        batch = Batch(
            tuple(map(str, chosen[rows])), np.zeros((len(rows), features.shape[2])), features[rows, chosen[rows]],
            rewards[rows], propensities[rows],
        )
        builder.add(batch, features[rows], chosen[rows], [target[rows]])
    return builder.build()[0]


def synthetic_log(events: int, seed: int) -> Evidence:
    """Linear rewards with Gaussian noise, so the reward model is correctly specified."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(events, ACTIONS, DIMENSION))
    mu = logging_policy(x)
    chosen = (mu.cumsum(1) > rng.random((events, 1))).argmax(1)
    rows = np.arange(events)
    rewards = x[rows, chosen] @ BETA + rng.normal(0, 0.5, events)
    return evidence(x, chosen, mu[rows, chosen], rewards, target_policy(x))


def test_every_estimators_95_percent_interval_covers_the_truth_in_about_95_percent_of_logs():
    truth = true_value()
    covered: dict[str, list[bool]] = {}
    for seed in range(200):
        log = synthetic_log(400, seed)
        for method in estimators(replicates=200, seed=seed):
            estimate = method.estimate(log, 0.95)
            covered.setdefault(method.name, []).append(estimate.lower <= truth <= estimate.upper)
    rates = {name: float(np.mean(hits)) for name, hits in covered.items()}
    assert set(rates) == {"ips", "snips", "dm", "dr"}
    for name, rate in rates.items():
        assert 0.90 <= rate <= 0.99, f"{name} covered the truth in {rate:.1%} of 200 logs: {rates}"


def tiny_log() -> Evidence:
    """Four events, two actions with one-hot features, one event per block, two folds (blocks 0, 2 | 1, 3)."""
    features = np.tile(np.eye(2), (4, 1, 1))
    chosen = np.array([0, 1, 0, 1])
    propensities = np.array([0.5, 0.25, 0.8, 0.5])
    rewards = np.array([1.0, 0.0, 0.0, 1.0])
    target = np.array([[1.0, 0.0], [0.5, 0.5], [0.2, 0.8], [0.0, 1.0]])
    return evidence(features, chosen, propensities, rewards, target, folds=2)


def test_ips_and_dr_equal_hand_computed_values_on_a_tiny_log():
    log = tiny_log()
    # Weights π(aᵢ)/μ(aᵢ): 1/0.5, 0.5/0.25, 0.2/0.8, 1/0.5.
    weights = np.array([2.0, 2.0, 0.25, 2.0])
    rewards = np.array([1.0, 0.0, 0.0, 1.0])
    assert IPS().estimate(log).value == pytest.approx((weights @ rewards) / 4)  # (2 + 0 + 0 + 2) / 4 = 1
    assert SNIPS().estimate(log).value == pytest.approx(4.0 / 6.25)
    # Ridge (λ = 1) on one-hot features gives θₐ = Σ r / (1 + count) over the other fold.
    # Fold {0, 2} is scored by events 1, 3 (action 1: rewards 0, 1): θ = (0, 1/3).
    # Fold {1, 3} is scored by events 0, 2 (action 0: rewards 1, 0): θ = (1/3, 0).
    theta = {0: np.array([0.0, 1 / 3]), 1: np.array([1 / 3, 0.0])}
    target = np.array([[1.0, 0.0], [0.5, 0.5], [0.2, 0.8], [0.0, 1.0]])
    chosen = [0, 1, 0, 1]
    terms = []
    for i in range(4):
        q = theta[i % 2]
        terms.append(target[i] @ q + weights[i] * (rewards[i] - q[chosen[i]]))
    # = [0 + 2(1 − 0), 1/6 + 2(0 − 0), 0.8/3 + 0.25(0 − 0), 0 + 2(1 − 0)]
    assert DoublyRobust().estimate(log).value == pytest.approx(np.mean(terms))
    assert DoublyRobust().estimate(log).value == pytest.approx((2 + 1 / 6 + 0.8 / 3 + 2) / 4)
    assert DirectMethod().estimate(log).value == pytest.approx(np.mean([target[i] @ theta[i % 2] for i in range(4)]))


def test_an_interval_on_a_tiny_log_is_the_t_interval_of_the_per_event_terms():
    log = tiny_log()
    terms = np.array([2.0, 0.0, 0.0, 2.0])
    estimate = IPS().estimate(log, 0.95)
    half = 3.182446305284263 * terms.std(ddof=1) / 2  # t(0.975, 3 df) · s / √n
    assert (estimate.lower, estimate.upper) == pytest.approx((1 - half, 1 + half))


def test_diagnostics_report_overlap():
    diagnostics = Diagnostics.of(tiny_log())
    assert diagnostics.events == 4
    assert diagnostics.effective_sample_size == pytest.approx(6.25**2 / (3 * 4 + 0.0625))
    assert (diagnostics.min_propensity, diagnostics.max_propensity) == (0.25, 0.8)
    assert (diagnostics.min_weight, diagnostics.max_weight) == (0.25, 2.0)
    assert diagnostics.mean_weight == pytest.approx(6.25 / 4)


def test_the_reward_model_is_the_ridge_solution_the_linear_policy_serves():
    log = synthetic_log(300, 0)
    model = log.model
    thetas = model.coefficients()
    for fold in range(3):
        training = {key: value[model.folds != fold].sum(0) for key, value in model.statistics.items()}
        assert thetas[fold] == pytest.approx(EpsilonGreedy(DIMENSION, ridge=model.model.ridge).snapshot(training)["theta"])


def test_a_paired_difference_of_a_policy_with_itself_is_exactly_zero():
    log = synthetic_log(300, 1)
    for method in estimators(replicates=50):
        difference = method.difference(log, log)
        assert difference.value == pytest.approx(0.0, abs=1e-12)
        assert difference.upper - difference.lower == pytest.approx(0.0, abs=1e-9)


def test_propensities_outside_the_unit_interval_are_refused():
    builder = EvidenceBuilder(RidgeRewardModel(dimension=2), targets=1)
    batch = Batch(("a",), np.zeros((1, 2)), np.ones((1, 2)), np.ones(1), np.zeros(1))
    with pytest.raises(ValueError, match="propensities"):
        builder.add(batch, np.ones((1, 1, 2)), np.zeros(1, dtype=int), [np.ones((1, 1))])
