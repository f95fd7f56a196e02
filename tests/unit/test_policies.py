"""Behaviour of the bandit policies: they learn, their state merges, propensities are valid."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy.stats import norm

from decide.config import LoopConfig
from decide.events.schemas import Decision
from decide.learning import statistics_after
from decide.policies import (
    POLICIES,
    ActionSet,
    Arrays,
    Batch,
    BetaThompson,
    EpsilonGreedy,
    LinearThompson,
    LinUCB,
    Policy,
    UniformRandom,
    argmax_distribution,
    floor_mix,
    make_policy,
    merge,
)
from decide.policies.linear import covariance_factor

Environment = Callable[[np.random.Generator], tuple[ActionSet, np.ndarray]]
"""Draws one decision's candidates and the reward every candidate would get."""

DIMENSION = 8
ARMS = 5


def linear_environment(seed: int, dimension: int = DIMENSION, arms: int = ARMS) -> Environment:
    """Shared linear payoff over random Gaussian action features, small noise."""
    theta = np.random.default_rng(seed).standard_normal(dimension)
    theta /= np.linalg.norm(theta)
    ids = tuple(f"a{i}" for i in range(arms))

    def draw(rng: np.random.Generator) -> tuple[ActionSet, np.ndarray]:
        features = rng.standard_normal((arms, dimension))
        actions = ActionSet(ids, np.zeros(dimension), features, np.ones(arms, dtype=bool))
        return actions, features @ theta + 0.1 * rng.standard_normal(arms)

    return draw


def per_action_environment(seed: int, dimension: int = DIMENSION, arms: int = 4) -> Environment:
    """Each action has its own linear payoff over the shared context."""
    thetas = np.random.default_rng(seed).standard_normal((arms, dimension))
    thetas /= np.linalg.norm(thetas, axis=1, keepdims=True)
    ids = tuple(f"a{i}" for i in range(arms))

    def draw(rng: np.random.Generator) -> tuple[ActionSet, np.ndarray]:
        context = rng.standard_normal(dimension)
        actions = ActionSet(ids, context, np.zeros((arms, dimension)), np.ones(arms, dtype=bool))
        return actions, thetas @ context + 0.1 * rng.standard_normal(arms)

    return draw


def bernoulli_environment(means: list[float]) -> Environment:
    ids = tuple(f"arm{i}" for i in range(len(means)))

    def draw(rng: np.random.Generator) -> tuple[ActionSet, np.ndarray]:
        actions = ActionSet(
            ids, np.zeros(1), np.zeros((len(ids), 1)), np.ones(len(ids), dtype=bool)
        )
        return actions, (rng.random(len(ids)) < means).astype(float)

    return draw


def simulate(
    policy: Policy,
    environment: Environment,
    rounds: int = 2000,
    batch_size: int = 50,
    seed: int = 0,
) -> tuple[float, np.ndarray, Arrays]:
    """Run the policy online, learning after every batch the way the learner does.

    Returns the average reward, the chosen action indices and the final snapshot.
    The environment has its own generator, so every policy sees the same candidates.
    """
    env_rng, policy_rng = np.random.default_rng(seed), np.random.default_rng(seed + 1)
    state: Arrays = {}
    snapshot = policy.snapshot(state)
    chosen: list[int] = []
    earned: list[float] = []
    for _ in range(rounds // batch_size):
        examples = []
        for _ in range(batch_size):
            actions, payoffs = environment(env_rng)
            p = policy.probabilities(snapshot, actions, policy_rng)
            a = int(policy_rng.choice(len(p), p=p))
            examples.append(
                (actions.ids[a], actions.context, actions.features[a], payoffs[a], p[a])
            )
            chosen.append(a)
            earned.append(payoffs[a])
        ids, contexts, features, rewards, propensities = zip(*examples, strict=True)
        batch = Batch(
            ids, np.array(contexts), np.array(features), np.array(rewards), np.array(propensities)
        )
        state = merge(state, policy.statistics(batch))
        snapshot = policy.snapshot(state)
    return float(np.mean(earned)), np.array(chosen), snapshot


def random_batch(
    rng: np.random.Generator, n: int, arms: int = ARMS, dimension: int = DIMENSION
) -> Batch:
    ids = tuple(f"a{i}" for i in rng.integers(0, arms, n))
    return Batch(
        ids,
        rng.standard_normal((n, dimension)),
        rng.standard_normal((n, dimension)),
        rng.random(n),
        np.full(n, 0.2),
    )


def concatenate(first: Batch, second: Batch) -> Batch:
    return Batch(
        first.action_ids + second.action_ids,
        np.concatenate([first.contexts, second.contexts]),
        np.concatenate([first.features, second.features]),
        np.concatenate([first.rewards, second.rewards]),
        np.concatenate([first.propensities, second.propensities]),
    )


ALL_POLICIES = [
    LinUCB(DIMENSION),
    LinUCB(DIMENSION, per_action=True),
    LinearThompson(DIMENSION),
    LinearThompson(DIMENSION, per_action=True),
    EpsilonGreedy(DIMENSION),
    BetaThompson(),
    UniformRandom(),
]
LEARNING_POLICIES = [policy for policy in ALL_POLICIES if not isinstance(policy, UniformRandom)]


def policy_id(policy: Policy) -> str:
    return policy.name + ("/per_action" if getattr(policy, "per_action", False) else "")


# Learning


@pytest.mark.parametrize("policy", [LinUCB(DIMENSION), LinearThompson(DIMENSION)], ids=policy_id)
def test_linear_policies_beat_uniform_on_linear_payoff(policy: Policy) -> None:
    environment = linear_environment(seed=3)
    uniform, _, _ = simulate(UniformRandom(), environment)
    learned, _, _ = simulate(policy, environment)
    # The best of 5 N(0, 1) payoffs averages about 1.16; uniform averages 0.
    assert learned > uniform + 0.8


def test_per_action_linucb_learns_each_action_and_explores_new_ones() -> None:
    environment = per_action_environment(seed=5)
    policy = LinUCB(DIMENSION, per_action=True, floor=0.0)
    uniform, _, _ = simulate(UniformRandom(), environment)
    learned, _, snapshot = simulate(policy, environment)
    assert learned > uniform + 0.6
    assert {f"theta/a{i}" for i in range(4)} <= snapshot.keys()

    # An action it has never seen falls back to the prior: wide bound, so it is tried.
    actions, _ = environment(np.random.default_rng(99))
    with_new = ActionSet(
        (*actions.ids, "new"),
        actions.context,
        np.zeros((5, DIMENSION)),
        np.ones(5, dtype=bool),
    )
    p = policy.probabilities(snapshot, with_new, np.random.default_rng(0))
    assert p[-1] == 1.0


def test_beta_thompson_finds_best_bernoulli_arm() -> None:
    policy = BetaThompson()
    _, chosen, snapshot = simulate(policy, bernoulli_environment([0.2, 0.5, 0.7]), rounds=1500)
    assert np.mean(chosen[-500:] == 2) > 0.8
    actions, _ = bernoulli_environment([0.2, 0.5, 0.7])(np.random.default_rng(0))
    assert np.argmax(policy.probabilities(snapshot, actions, np.random.default_rng(0))) == 2


def test_linucb_theta_is_the_ridge_solution() -> None:
    rng = np.random.default_rng(0)
    batch = random_batch(rng, 200)
    policy = LinUCB(DIMENSION, ridge=2.5)
    snapshot = policy.snapshot(policy.statistics(batch))
    x, r = batch.features, batch.rewards
    a = 2.5 * np.eye(DIMENSION) + x.T @ x
    assert np.allclose(snapshot["theta"], np.linalg.solve(a, x.T @ r))
    chol = snapshot["chol"].astype(np.float64)
    assert snapshot["chol"].dtype == np.float32  # the serving precision (see LinearPolicy.snapshot)
    assert np.array_equal(chol, np.tril(chol))
    assert np.allclose(chol @ chol.T, np.linalg.inv(a), rtol=1e-5, atol=1e-6 * np.abs(np.linalg.inv(a)).max())


def test_per_action_statistics_use_context_of_each_action() -> None:
    rng = np.random.default_rng(1)
    batch = random_batch(rng, 100, arms=3)
    policy = LinUCB(DIMENSION, per_action=True)
    snapshot = policy.snapshot(policy.statistics(batch))
    for action_id in ("a0", "a1", "a2"):
        rows = np.array(batch.action_ids) == action_id
        x, r = batch.contexts[rows], batch.rewards[rows]
        expected = np.linalg.solve(np.eye(DIMENSION) + x.T @ x, x.T @ r)
        assert np.allclose(snapshot[f"theta/{action_id}"], expected)


def test_linear_thompson_monte_carlo_matches_exact_two_action_probability() -> None:
    """The shared-mode sampler must respect the correlation between the actions' scores."""
    rng = np.random.default_rng(2)
    policy = LinearThompson(DIMENSION, scale=0.7, floor=0.0, samples=65_536)
    snapshot = policy.snapshot(policy.statistics(random_batch(rng, 30)))
    features = rng.standard_normal((2, DIMENSION))
    features[1] = 0.8 * features[0] + 0.3 * features[1]
    actions = ActionSet(("a", "b"), np.zeros(DIMENSION), features, np.ones(2, dtype=bool))
    p = policy.probabilities(snapshot, actions, np.random.default_rng(3))
    diff = features[0] - features[1]
    exact = norm.cdf(diff @ snapshot["theta"] / (0.7 * np.linalg.norm(snapshot["chol"].T @ diff)))
    assert abs(p[0] - exact) < 0.01


def test_linear_thompson_samples_a_singular_score_covariance() -> None:
    """Candidates with identical vectors make the scores' covariance singular; the draws must still follow it."""
    rng = np.random.default_rng(5)
    policy = LinearThompson(DIMENSION, scale=0.7, floor=0.0, samples=65_536)
    snapshot = policy.snapshot(policy.statistics(random_batch(rng, 30)))
    row = rng.standard_normal(DIMENSION)
    actions = ActionSet(("a", "b", "c"), np.zeros(DIMENSION), np.array([row, row, -row]), np.ones(3, dtype=bool))
    p = policy.probabilities(snapshot, actions, np.random.default_rng(6))
    exact = norm.cdf(row @ snapshot["theta"] / (0.7 * np.linalg.norm(snapshot["chol"].T @ row)))
    assert abs(p[0] + p[1] - exact) < 0.01  # "a" and "b" share their wins (their draws tie up to rounding)
    assert abs(p.sum() - 1.0) < 1e-12



@pytest.mark.parametrize("samples", [1, 2, 3, 7])
@pytest.mark.parametrize("per_action", [False, True])
def test_linear_thompson_takes_any_number_of_samples(samples: int, per_action: bool) -> None:
    """Samples come in antithetic pairs; an odd count keeps the first draw of the last pair."""
    rng = np.random.default_rng(7)
    policy = LinearThompson(DIMENSION, floor=0.0, samples=samples, per_action=per_action)
    actions = ActionSet(("a", "b", "c"), rng.standard_normal(DIMENSION), rng.standard_normal((3, DIMENSION)), np.ones(3, dtype=bool))
    p = policy.probabilities(policy.snapshot({}), actions, np.random.default_rng(8))
    assert abs(p.sum() - 1.0) < 1e-12
    assert np.allclose(p * samples, np.round(p * samples))  # whole numbers of wins out of `samples`

@pytest.mark.parametrize("rank", [4, 2, 0])
def test_covariance_factor_reproduces_the_matrix(rank: int) -> None:
    rng = np.random.default_rng(rank)
    half = rng.standard_normal((4, rank))
    gram = half @ half.T
    factor = covariance_factor(gram)
    assert np.allclose(factor @ factor.T, gram)

# State


@pytest.mark.parametrize("policy", LEARNING_POLICIES, ids=policy_id)
def test_merge_is_additive_and_order_independent(policy: Policy) -> None:
    rng = np.random.default_rng(4)
    first, second = random_batch(rng, 60), random_batch(rng, 40)
    all_at_once = policy.statistics(concatenate(first, second))
    one_then_two = merge(merge({}, policy.statistics(first)), policy.statistics(second))
    two_then_one = merge(merge({}, policy.statistics(second)), policy.statistics(first))
    for state in (one_then_two, two_then_one):
        assert state.keys() == all_at_once.keys()
        for key in state:
            assert np.allclose(state[key], all_at_once[key]), key
    snapshots = [policy.snapshot(s) for s in (all_at_once, one_then_two)]
    for key in snapshots[0]:
        assert np.allclose(snapshots[0][key], snapshots[1][key]), key


def test_merge_discounts_old_state_and_leaves_inputs_alone() -> None:
    state = {"x": np.array([2.0, 4.0]), "only_old": np.array([8.0])}
    delta = {"x": np.array([1.0, 1.0]), "only_new": np.array([3.0])}
    merged = merge(state, delta, discount=0.5)
    assert merged.keys() == {"x", "only_old", "only_new"}
    assert np.array_equal(merged["x"], [2.0, 3.0])
    assert np.array_equal(merged["only_old"], [4.0])
    assert np.array_equal(merged["only_new"], [3.0])
    assert np.array_equal(state["x"], [2.0, 4.0]) and np.array_equal(delta["x"], [1.0, 1.0])
    merged["only_new"][0] = 99.0
    assert delta["only_new"][0] == 3.0
    with pytest.raises(ValueError, match="shape"):
        merge(state, {"x": np.zeros(3)})


def test_snapshot_does_not_alias_statistics() -> None:
    policy = LinUCB(DIMENSION)
    statistics = policy.statistics(random_batch(np.random.default_rng(5), 20))
    before = {key: value.copy() for key, value in statistics.items()}
    snapshot = policy.snapshot(statistics)
    snapshot["chol"][:] = 0.0
    for key in statistics:
        assert np.array_equal(statistics[key], before[key])


# Probabilities


@pytest.mark.parametrize("policy", ALL_POLICIES, ids=policy_id)
def test_probabilities_are_a_floored_distribution_over_eligible_actions(policy: Policy) -> None:
    rng = np.random.default_rng(6)
    snapshot = policy.snapshot(policy.statistics(random_batch(rng, 300, arms=6)))
    eligible = np.array([True, False, True, True, False, True])
    actions = ActionSet(
        tuple(f"a{i}" for i in range(6)),
        rng.standard_normal(DIMENSION),
        rng.standard_normal((6, DIMENSION)),
        eligible,
    )
    p = policy.probabilities(snapshot, actions, rng)
    floor = getattr(policy, "floor", getattr(policy, "epsilon", 1.0))
    assert p.dtype == np.float64 and p.shape == (6,)
    assert abs(p.sum() - 1.0) <= 1e-12
    assert np.all(p[~eligible] == 0.0)
    assert np.all(p[eligible] >= floor / eligible.sum() - 1e-15)

    with pytest.raises(ValueError, match="no eligible action"):
        policy.probabilities(
            snapshot,
            ActionSet(actions.ids, actions.context, actions.features, np.zeros(6, bool)),
            rng,
        )


@pytest.mark.parametrize("policy", ALL_POLICIES, ids=policy_id)
def test_same_seed_gives_same_probabilities(policy: Policy) -> None:
    rng = np.random.default_rng(7)
    snapshot = policy.snapshot(policy.statistics(random_batch(rng, 50)))
    actions = ActionSet(
        tuple(f"a{i}" for i in range(ARMS)),
        rng.standard_normal(DIMENSION),
        rng.standard_normal((ARMS, DIMENSION)),
        np.ones(ARMS, dtype=bool),
    )
    first = policy.probabilities(snapshot, actions, np.random.default_rng(11))
    second = policy.probabilities(snapshot, actions, np.random.default_rng(11))
    assert np.array_equal(first, second)


def test_epsilon_greedy_is_closed_form() -> None:
    rng = np.random.default_rng(8)
    policy = EpsilonGreedy(DIMENSION, epsilon=0.2)
    snapshot = policy.snapshot(policy.statistics(random_batch(rng, 100)))
    actions = ActionSet(
        tuple(f"a{i}" for i in range(4)),
        np.zeros(DIMENSION),
        rng.standard_normal((4, DIMENSION)),
        np.ones(4, dtype=bool),
    )
    p = policy.probabilities(snapshot, actions, rng)
    best = np.argmax(actions.features @ snapshot["theta"])
    expected = np.full(4, 0.05)
    expected[best] = 0.85
    assert np.allclose(p, expected, atol=1e-15)


def test_argmax_distribution_skips_ineligible_and_breaks_ties_low() -> None:
    scores = np.array([5.0, 3.0, 3.0, 1.0])
    eligible = np.array([False, True, True, True])
    assert np.array_equal(argmax_distribution(scores, eligible), [0.0, 1.0, 0.0, 0.0])
    assert np.array_equal(
        argmax_distribution(np.full(3, -np.inf), np.ones(3, bool)), [1.0, 0.0, 0.0]
    )


def test_floor_mix_gives_each_eligible_action_its_share() -> None:
    eligible = np.array([True, True, False, True])
    p = floor_mix(np.array([1.0, 0.0, 0.0, 0.0]), eligible, 0.3)
    assert np.allclose(p, [0.8, 0.1, 0.0, 0.1])
    with pytest.raises(ValueError, match="floor"):
        floor_mix(p, eligible, 1.0)


# Configuration


def test_make_policy_builds_every_policy_by_name() -> None:
    for name, cls in POLICIES.items():
        policy = make_policy(name, DIMENSION, {})
        assert isinstance(policy, cls) and policy.name == name
    assert make_policy("linucb", 16, {"alpha": 2, "per_action": True}) == LinUCB(
        16, alpha=2, per_action=True
    )
    assert make_policy("beta_thompson", 16, {"samples": 10}) == BetaThompson(samples=10)


def test_make_policy_rejects_bad_configuration_with_helpful_messages() -> None:
    with pytest.raises(ValueError) as error:
        make_policy("linucb", DIMENSION, {"alpah": 1.0})
    assert (
        str(error.value)
        == "policy 'linucb' has no parameter 'alpah'; allowed: alpha, ridge, floor, per_action"
    )
    with pytest.raises(ValueError, match="unknown policy 'ucb'; allowed: linucb, linear_thompson"):
        make_policy("ucb", DIMENSION, {})
    with pytest.raises(
        ValueError, match=r"policy 'linucb': alpha must be a number in \[0, inf\), got -1"
    ):
        make_policy("linucb", DIMENSION, {"alpha": -1})
    with pytest.raises(ValueError, match=r"floor must be a number in \[0, 1\)"):
        make_policy("linear_thompson", DIMENSION, {"floor": 1.0})
    with pytest.raises(ValueError, match="samples must be an integer"):
        make_policy("beta_thompson", DIMENSION, {"samples": 2.5})
    with pytest.raises(ValueError, match="ridge"):
        make_policy("epsilon_greedy", DIMENSION, {"ridge": 0})
    with pytest.raises(ValueError, match="per_action must be true or false"):
        make_policy("linucb", DIMENSION, {"per_action": "yes"})
    with pytest.raises(ValueError, match="dimension"):
        make_policy("linucb", 0, {})


def test_inputs_of_the_wrong_shape_are_rejected() -> None:
    policy = LinUCB(DIMENSION)
    snapshot = policy.snapshot({})
    actions = ActionSet(("a", "b"), np.zeros(3), np.zeros((2, 3)), np.ones(2, dtype=bool))
    with pytest.raises(ValueError, match="features has shape"):
        policy.probabilities(snapshot, actions, np.random.default_rng(0))
    with pytest.raises(ValueError, match="non-finite"):
        policy.statistics(
            Batch(
                ("a",),
                np.zeros((1, DIMENSION)),
                np.zeros((1, DIMENSION)),
                np.array([np.nan]),
                np.ones(1),
            )
        )


def test_forgetting_gives_the_same_state_however_the_examples_are_batched():
    rng = np.random.default_rng(3)
    actions = [{"id": "a", "features": []}, {"id": "b", "features": []}]
    decisions = [
        Decision(event_id=f"e{i}", loop="l", timestamp=0.0, policy_version=1, context=[{"x": float(rng.normal())}],
                 actions=actions, excluded=[], chosen="ab"[i % 2], probabilities=[0.5, 0.5])
        for i in range(30)
    ]
    rewards = list(rng.random(30))
    for policy_name in ("linucb", "beta_thompson"):
        config = LoopConfig(policy=policy_name, discount=0.9, featureDimension=16)
        policy = config.build_policy()
        whole = statistics_after(config, policy, {}, decisions, rewards)
        state: dict = {}
        for start, stop in ((0, 7), (7, 8), (8, 30)):
            state = statistics_after(config, policy, state, decisions[start:stop], rewards[start:stop])
        assert whole.keys() == state.keys()
        for key in whole:
            np.testing.assert_allclose(state[key], whole[key], rtol=1e-12)
