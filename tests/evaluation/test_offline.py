"""Comparisons and the guarded parameter search on simulated logs, where the truth is known."""

from __future__ import annotations

import numpy as np
import pytest

from decide.config import LoopConfig
from decide.evaluation.offline import Options, compare, evaluate, optimize
from decide.evaluation.targets import Candidate, parse_candidates
from simulations.check import check_estimators
from simulations.runner import run


def test_compare_shows_the_online_policy_the_baseline_uniform_and_candidates(small, uniform_log):
    config = small.policies[0].config
    evaluation = compare(uniform_log.log, config, ["linucb:alpha=0.5|2"])
    labels = [result.label for result in evaluation.results]
    assert labels == ["online", "baseline", "uniform", "linucb:alpha=0.5", "linucb:alpha=2"]
    online = evaluation.result("online")
    assert online.estimates["ips"].value == pytest.approx(np.mean([e.reward for e in uniform_log.log if e.learnable]))
    assert online.diagnostics.effective_sample_size == pytest.approx(evaluation.events)
    uniform = evaluation.result("uniform").estimates["ips"]
    assert uniform.value == pytest.approx(online.estimates["ips"].value), "uniform is the logging policy here"
    assert evaluation.result("linucb:alpha=0.5").estimates["dr"].lower > online.estimates["dr"].upper
    json = evaluation.to_json()
    assert json["events"] == evaluation.events and len(json["policies"]) == 5


def test_estimates_cover_the_simulators_truth(small):
    result = run(small.select(["uniform"]), keep_log=True)
    offline = check_estimators(result, "uniform")
    for policy in offline["policies"]:
        for name in ("ips", "snips", "dr"):
            estimate = policy["estimates"][name]
            assert estimate["lower"] <= policy["truth"] <= estimate["upper"], (policy["policy"], name, estimate, policy["truth"])


def test_optimize_recommends_a_reliably_better_setting(small, uniform_log):
    recommendation = optimize(uniform_log.log, small.policies[0].config, ["linucb:alpha=0.3|1"], Options(replicates=50))
    assert recommendation.recommended, recommendation.message
    assert recommendation.best.startswith("linucb") and recommendation.config.policy == "linucb"
    assert recommendation.advantage.lower > 0
    assert "switch to" in recommendation.message


def test_optimize_keeps_the_current_policy_when_nothing_is_better(small):
    logged = run(small.select(["linucb"]), keep_log=True).traces[0]
    recommendation = optimize(logged.log, small.policies[1].config, ["uniform"], Options(replicates=50))
    assert not recommendation.recommended
    assert "keep the current policy" in recommendation.message


def test_candidate_specs_span_a_grid_of_loop_settings_and_policy_parameters():
    base = LoopConfig(policy="linucb", policyParams={"alpha": 2.0, "ridge": 3.0})
    candidates = parse_candidates("linucb:alpha=0.5|1,explorationFloor=0.1,interactions=false", base)
    assert [label for label, _ in candidates] == [
        "linucb:alpha=0.5,explorationFloor=0.1,interactions=false",
        "linucb:alpha=1,explorationFloor=0.1,interactions=false",
    ]
    config = candidates[0][1]
    assert config.policyParams == {"alpha": 0.5, "ridge": 3.0} and config.explorationFloor == 0.1 and not config.interactions
    assert parse_candidates("linear_thompson", base)[0][1].policyParams == {}
    with pytest.raises(ValueError, match="no parameter"):
        parse_candidates("linucb:beta=1", base)
    with pytest.raises(ValueError, match="names no policy"):
        parse_candidates(":alpha=1", base)


def test_a_candidate_with_its_own_feature_space_is_featurized_in_it(small, uniform_log):
    config = small.policies[0].config
    (label, other), = parse_candidates("linucb:featureDimension=16", config)
    evaluation = evaluate(uniform_log.log, config, [Candidate(label, other), Candidate("uniform", LoopConfig(policy="uniform"))], Options(blocks=20))
    candidate, uniform = (result.estimates["dr"] for result in evaluation.results)
    assert candidate.lower > uniform.upper, "a learning policy in its own 16-dimensional space still clearly beats uniform"


def test_an_empty_log_is_an_error_that_says_so(small):
    with pytest.raises(ValueError, match="no logged decisions"):
        compare([], small.policies[0].config)


def test_the_default_search_varies_model_settings_not_exploration(small, uniform_log):
    config = small.policies[1].config
    recommendation = optimize(uniform_log.log[:300], config, options=Options(blocks=30, replicates=20))
    labels = [result.label for result in recommendation.evaluation.results[1:]]
    assert len(labels) == 10 and all(label.startswith("linucb:ridge=") for label in labels)
    assert "alpha" not in " ".join(labels)


def test_decisions_with_different_candidates_and_exclusions_are_evaluated_together():
    from decide.evaluation.logs import LoggedExample
    from decide.events.schemas import Decision

    rng = np.random.default_rng(0)
    log = []
    for i in range(300):
        count = 2 + i % 3
        actions = [{"id": f"a{k}", "features": [{"k": k}]} for k in range(count)]
        excluded = ["a0"] if i % 5 == 0 else []
        eligible = [a["id"] for a in actions if a["id"] not in excluded]
        probabilities = [0.0 if a["id"] in excluded else 1 / len(eligible) for a in actions]
        chosen = eligible[int(rng.integers(len(eligible)))]
        decision = Decision(f"e{i}", "mixed", float(i), 1, [{"x": float(rng.normal())}], actions, excluded, chosen, probabilities)
        log.append(LoggedExample(decision, float(chosen == "a1"), "observed"))
    evaluation = compare(log, LoopConfig(featureDimension=32), ["linucb"], Options(blocks=30, replicates=20))
    baseline = evaluation.result("baseline").estimates["ips"]
    # The baseline plays the first eligible action: a1 exactly when a0 is excluded (every fifth decision), rewarded 1 then.
    first_eligible = [next(a["id"] for a in e.decision.actions if a["id"] not in e.decision.excluded) for e in log]
    by_hand = np.mean([(e.decision.chosen == first) * e.reward / e.decision.propensity for e, first in zip(log, first_eligible)])
    assert baseline.value == pytest.approx(by_hand, rel=1e-12)
    assert baseline.lower <= 0.2 <= baseline.upper, "its true value is 0.2"
    assert evaluation.result("uniform").estimates["ips"].value == pytest.approx(evaluation.result("online").estimates["ips"].value)
