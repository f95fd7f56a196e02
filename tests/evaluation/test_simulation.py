"""Environments, scenario files and the in-process runner."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulations.environments import (
    Delivery,
    Drifting,
    LinearPayoff,
    LogisticPayoff,
    ModelRouting,
    make_environment,
)
from simulations.runner import run, run_policy
from simulations.scenario import (
    ScenarioError,
    builtin_names,
    load_scenario,
    parse_scenario,
)


def test_linucb_and_linear_thompson_beat_epsilon_greedy_and_uniform_on_regret():
    result = run(load_scenario("linear-contextual"))
    regret = {row["policy"]: row["cumulative_regret"] for row in result.summary()}
    for learned in ("linucb", "linear_thompson"):
        for baseline in ("epsilon_greedy", "uniform"):
            assert regret[learned] < regret[baseline], regret


def test_every_builtin_scenario_loads_and_runs():
    assert {"linear-contextual", "logistic-drift", "delayed-rewards", "model-routing"} <= set(builtin_names())
    for name in builtin_names():
        scenario = load_scenario(name).select(rounds=60, seeds=[0])
        result = run(scenario)
        assert {trace.label for trace in result.traces} == {spec.label for spec in scenario.policies}
        assert all(trace.rounds == 60 for trace in result.traces)


def test_the_same_seed_gives_every_policy_the_same_contexts(small):
    short = small.select(rounds=300)
    traces = run(short, keep_log=True).traces
    contexts = [[example.decision.context for example in trace.log] for trace in traces]
    assert contexts[0] == contexts[1]
    again = run(short, keep_log=True).traces[1]
    assert again.chosen == traces[1].chosen, "a run is deterministic given its seed"


def test_regret_is_measured_against_the_oracle(small):
    trace = run_policy(small, small.policies[0], seed=0)
    assert np.all(trace.best >= trace.expected - 1e-12)
    assert trace.regret[-1] == pytest.approx(np.sum(trace.best - trace.expected))
    assert np.all(np.diff(trace.regret) >= -1e-12)


def test_rewards_that_arrive_late_or_never_are_learned_as_the_default(small_document):
    small_document["delivery"] = {"delay": 5.0, "missing": 0.3}
    small_document["loop"]["defaultReward"] = -1
    scenario = parse_scenario(small_document)
    trace = run_policy(scenario, scenario.policies[0], seed=0, keep_log=True)
    defaulted = np.array([example.reason == "default" for example in trace.log])
    assert np.all(trace.joined[defaulted] == -1)
    assert np.all(trace.joined[~defaulted] == trace.rewards[~defaulted])
    expected = 1 - scenario.delivery.on_time(1.0)
    assert defaulted.mean() == pytest.approx(expected, abs=0.05)


def test_the_policy_learns_once_per_update_interval(small):
    trace = run_policy(small, small.policies[1], seed=0)
    rounds_per_update = small.policies[1].config.updateInterval * small.rate
    assert trace.versions[-1] == pytest.approx(small.rounds / rounds_per_update, abs=3)


def test_delivery_probability_of_arriving_in_time():
    assert Delivery().on_time(1.0) == 1.0
    assert Delivery(delay=2.0, missing=0.1).on_time(2.0) == pytest.approx(0.9 * (1 - math.exp(-1)))
    samples = [Delivery(delay=1.0, missing=0.25).sample(np.random.default_rng(s)) for s in range(2000)]
    assert np.mean([s is None for s in samples]) == pytest.approx(0.25, abs=0.03)


def test_drift_shifts_the_population_every_period():
    drifting = Drifting(LinearPayoff(seed=3, n_segments=8), every=10)
    favourites = []
    for _ in range(30):
        drifting.next_round()
        favourites.append(tuple(drifting.inner.favourite))
    assert len(set(favourites)) == 3
    assert len(set(favourites[:10])) == 1


def test_logistic_payoff_is_a_probability_and_varies_with_context():
    environment = LogisticPayoff(seed=1)
    rounds = [environment.next_round() for _ in range(200)]
    values = np.array([list(r.expected.values()) for r in rounds])
    assert np.all((values > 0) & (values < 1))
    assert len({r.best for r in rounds}) > 1


def test_model_routing_prefers_a_cheap_model_where_it_is_good_enough():
    routing = ModelRouting(seed=0)
    best = {}
    for _ in range(300):
        played = routing.next_round()
        best[played.context[0]["request"]["segment"]] = played.best
    assert best == {"chat": "small", "code": "medium", "math": "large"}
    assert routing.reward(played, "large") in (1 - 0.15, -0.15)


def test_environments_and_scenarios_reject_mistakes_with_a_message(small_document):
    with pytest.raises(ValueError, match="allowed: n_actions"):
        make_environment("linear", {"arms": 3}, seed=0)
    with pytest.raises(ValueError, match="unknown environment"):
        make_environment("quadratic", {}, seed=0)
    with pytest.raises(ValueError, match="lacks segment"):
        ModelRouting(segments={"chat": 1.0, "legal": 1.0})
    with pytest.raises(ScenarioError, match="policies.bad.policy"):
        parse_scenario({**small_document, "policies": {"bad": {"policy": "nope"}}})
    with pytest.raises(ScenarioError, match="unknown key"):
        parse_scenario({**small_document, "round": 5})
    with pytest.raises(ScenarioError, match="built-in scenarios"):
        load_scenario("no-such-scenario")
    with pytest.raises(ScenarioError, match="has no policy"):
        parse_scenario(small_document).select(["thompson"])


def test_a_scenario_may_be_toml(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(
        'name = "tiny"\nrounds = 30\n[environment]\nkind = "logistic"\nn_actions = 3\n'
        '[policies.uniform]\npolicy = "uniform"\n'
    )
    scenario = load_scenario(path)
    assert (scenario.name, scenario.rounds, scenario.environment) == ("tiny", 30, "logistic")
    assert run(scenario).traces[0].rounds == 30
