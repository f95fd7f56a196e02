"""Edges of the off-policy estimators that the main tests leave open (found by mutation testing).

The main tests check unbiasedness and a four-event log by hand. These check the
estimators against a direct, event-by-event reading of their definitions on logs
whose blocks hold several events, the intervals' exact form, the bootstrap, the
one- and two-block boundaries, what a report shows (names, JSON), and every
refusal with a message a person can act on.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import t as student

from decide.evaluation.estimators import (
    IPS,
    SNIPS,
    Diagnostics,
    DirectMethod,
    DoublyRobust,
    Evidence,
    EvidenceBuilder,
    estimators,
    ratio_estimate,
)
from decide.evaluation.reward_model import RidgeRewardModel
from decide.policies import Batch

ACTIONS, DIMENSION = 3, 4


class Log:
    """A small random log, kept event by event so the tests can compute every estimate the long way."""

    def __init__(self, blocks: int, per_block: int, seed: int = 0, target_zero: bool = False) -> None:
        rng = np.random.default_rng(seed)
        n = blocks * per_block
        self.blocks, self.per_block = blocks, per_block
        self.x = rng.normal(size=(n, ACTIONS, DIMENSION))
        self.mu = rng.dirichlet(np.ones(ACTIONS), size=n) * 0.7 + 0.1
        self.chosen = np.array([rng.choice(ACTIONS, p=p) for p in self.mu])
        rows = np.arange(n)
        self.propensity = self.mu[rows, self.chosen]
        self.reward = self.x[rows, self.chosen] @ np.array([1.0, -0.5, 0.25, 0.0]) + rng.normal(0, 0.3, n)
        self.pi = rng.dirichlet(np.ones(ACTIONS), size=n)
        if target_zero:  # the target never plays what was logged
            self.pi[rows, self.chosen] = 0.0
            self.pi /= self.pi.sum(1, keepdims=True)
        self.w = self.pi[rows, self.chosen] / self.propensity
        self.block = rows // per_block

    def evidence(self, model=None, folds: int = 3, targets=None) -> list[Evidence]:
        model = model or RidgeRewardModel(DIMENSION, ridge=2.0)
        targets = targets or [self.pi]
        builder = EvidenceBuilder(model, targets=len(targets), folds=folds)
        for j in range(self.blocks):
            rows = np.flatnonzero(self.block == j)
            batch = Batch(
                tuple(map(str, self.chosen[rows])), np.zeros((len(rows), DIMENSION)),
                self.x[rows, self.chosen[rows]], self.reward[rows], self.propensity[rows],
            )
            builder.add(batch, self.x[rows], self.chosen[rows], [target[rows] for target in targets])
        return builder.build()

    def thetas(self, ridge: float, folds: int, counts: np.ndarray | None = None) -> np.ndarray:
        """Each fold's ridge fit on the (resampled) events of every other fold, straight from the events."""
        counts = np.ones(self.blocks) if counts is None else counts
        rows = np.arange(len(self.chosen))
        chosen = self.x[rows, self.chosen]
        fold = self.block % folds
        thetas = []
        for f in range(folds):
            weight = np.where(fold == f, 0.0, counts[self.block])
            a = ridge * np.eye(DIMENSION) + (chosen * weight[:, None]).T @ chosen
            thetas.append(np.linalg.solve(a, chosen.T @ (weight * self.reward)))
        return np.array(thetas)

    def dm_terms(self, thetas: np.ndarray, folds: int) -> np.ndarray:
        q = self.x @ thetas[self.block % folds][:, :, None]
        return (self.pi * q[..., 0]).sum(1)

    def dr_terms(self, thetas: np.ndarray, folds: int) -> np.ndarray:
        rows = np.arange(len(self.chosen))
        q_chosen = (self.x[rows, self.chosen] * thetas[self.block % folds]).sum(1)
        return self.dm_terms(thetas, folds) + self.w * (self.reward - q_chosen)


def cluster_interval(terms: np.ndarray, sizes: np.ndarray, block: np.ndarray, confidence: float) -> tuple[float, float, float]:
    """Value, standard error and t quantile of Σ terms / Σ sizes over blocks, written out block by block."""
    t = np.bincount(block, weights=terms)
    d = np.bincount(block, weights=sizes)
    value = t.sum() / d.sum()
    influence = (t - value * d) / d.sum()
    m = len(t)
    error = math.sqrt(m / (m - 1) * (influence**2).sum())
    return value, error, float(student.ppf((1 + confidence) / 2, m - 1))


def test_ips_snips_dr_and_their_intervals_follow_the_definitions_on_blocks_of_several_events():
    log = Log(blocks=9, per_block=5)
    (evidence,) = log.evidence()
    ones = np.ones(len(log.w))
    thetas = log.thetas(ridge=2.0, folds=3)
    cases = [
        (IPS(), log.w * log.reward, ones),
        (SNIPS(), log.w * log.reward, log.w),
        (DoublyRobust(), log.dr_terms(thetas, 3), ones),
    ]
    for method, terms, sizes in cases:
        value, error, quantile = cluster_interval(terms, sizes, log.block, 0.9)
        estimate = method.estimate(evidence, 0.9)
        assert estimate.value == pytest.approx(value), method.name
        assert estimate.std_error == pytest.approx(error), method.name
        assert (estimate.lower, estimate.upper) == pytest.approx((value - quantile * error, value + quantile * error)), method.name
        assert (estimate.estimator, estimate.confidence, estimate.interval) == (method.name, 0.9, "normal")
    assert DirectMethod().totals(evidence)[0].sum() / len(log.w) == pytest.approx(log.dm_terms(thetas, 3).mean())


def test_the_direct_methods_interval_is_the_percentile_bootstrap_that_refits_the_model():
    log = Log(blocks=8, per_block=3, seed=1)
    (evidence,) = log.evidence()
    method = DirectMethod(replicates=40, seed=5)
    estimate = method.estimate(evidence, 0.8)
    counts, _ = evidence.model.bootstrap(40, 5)
    assert counts.shape == (40, 8) and (counts.sum(1) == 8).all(), "each replicate resamples the 8 blocks"
    values = []
    for row in counts:
        terms = log.dm_terms(log.thetas(ridge=2.0, folds=3, counts=row), 3)
        weight = row[log.block]
        values.append((weight * terms).sum() / weight.sum())
    assert estimate.value == pytest.approx(log.dm_terms(log.thetas(ridge=2.0, folds=3), 3).mean())
    assert (estimate.lower, estimate.upper) == pytest.approx(tuple(np.quantile(values, [0.1, 0.9])))
    assert estimate.std_error == pytest.approx(np.std(values, ddof=1))
    assert (estimate.estimator, estimate.confidence, estimate.interval) == ("dm", 0.8, "bootstrap")
    assert estimate.lower < estimate.value < estimate.upper


def test_the_bootstrap_is_reproducible_from_its_seed_and_changes_with_it():
    log = Log(blocks=10, per_block=2, seed=2)
    first = DirectMethod(replicates=30, seed=3).estimate(log.evidence()[0])
    again = DirectMethod(replicates=30, seed=3).estimate(log.evidence()[0])  # a fresh model: nothing cached
    other = DirectMethod(replicates=30, seed=4).estimate(log.evidence()[0])
    assert (first.lower, first.upper) == (again.lower, again.upper)
    assert (first.lower, first.upper) != (other.lower, other.upper)


def test_bootstrapping_does_not_change_the_models_fit_on_the_log_itself():
    log = Log(blocks=9, per_block=2, seed=3)
    (evidence,) = log.evidence()
    before = DoublyRobust().estimate(evidence).value
    DirectMethod(replicates=20).estimate(evidence)
    assert DoublyRobust().estimate(evidence).value == before
    assert evidence.model.coefficients() == pytest.approx(log.thetas(ridge=2.0, folds=3))
    assert evidence.model.coefficients().shape == (3, DIMENSION), "one model per fold"


def test_the_default_estimators_are_the_classes_defaults_in_report_order():
    (evidence,) = Log(blocks=6, per_block=2, seed=4).evidence()
    methods = estimators()
    assert [method.name for method in methods] == ["ips", "snips", "dm", "dr"]
    assert [method.title for method in methods] == ["IPS", "SNIPS", "DM", "DR"]
    assert methods[2].estimate(evidence) == DirectMethod().estimate(evidence)
    chosen = estimators(replicates=25, seed=9)[2]
    assert chosen.estimate(evidence) == DirectMethod(replicates=25, seed=9).estimate(evidence)
    assert chosen.estimate(evidence) != DirectMethod(replicates=25, seed=8).estimate(evidence)


def test_blocks_are_dealt_round_robin_into_three_folds_by_default():
    log = Log(blocks=7, per_block=1, seed=5)
    builder = EvidenceBuilder(RidgeRewardModel(DIMENSION), targets=1)
    for j in range(7):
        batch = Batch((str(log.chosen[j]),), np.zeros((1, DIMENSION)), log.x[[j], log.chosen[[j]]], log.reward[[j]], log.propensity[[j]])
        builder.add(batch, log.x[[j]], log.chosen[[j]], [log.pi[[j]]])
    (evidence,) = builder.build()
    assert evidence.model.folds.tolist() == [0, 1, 2, 0, 1, 2, 0]


def test_one_block_gives_a_value_without_an_interval_and_two_blocks_give_one():
    one = Log(blocks=1, per_block=6, seed=6)
    (evidence,) = one.evidence()
    assert evidence.blocks == 1
    for method in estimators(replicates=10):
        estimate = method.estimate(evidence, 0.9)
        assert estimate.estimator == method.name
        assert math.isfinite(estimate.value)
        assert all(math.isnan(bound) for bound in (estimate.lower, estimate.upper, estimate.std_error))
        assert estimate.confidence == 0.9
        assert estimate.interval == ("bootstrap" if method.name == "dm" else "normal")
        assert estimate.to_json()["lower"] is None and estimate.to_json()["value"] == estimate.value
    assert IPS().estimate(evidence).value == pytest.approx((one.w * one.reward).mean())
    (two,) = Log(blocks=2, per_block=3, seed=6).evidence(folds=2)
    for method in estimators(replicates=10):
        estimate = method.estimate(two)
        assert math.isfinite(estimate.lower) and math.isfinite(estimate.upper), method.name


def test_an_estimate_in_json_has_every_field_with_null_for_a_missing_bound():
    (evidence,) = Log(blocks=5, per_block=2, seed=7).evidence()
    estimate = SNIPS().estimate(evidence, 0.9)
    assert estimate.to_json() == {
        "estimator": "snips", "value": estimate.value, "lower": estimate.lower, "upper": estimate.upper,
        "std_error": estimate.std_error, "confidence": 0.9, "interval": "normal",
    }
    missing = ratio_estimate("ips", [(np.array([2.0]), np.array([1.0]))], [1.0], 0.95)
    assert missing.to_json() == {
        "estimator": "ips", "value": 2.0, "lower": None, "upper": None, "std_error": None, "confidence": 0.95, "interval": "normal",
    }


def test_diagnostics_on_blocks_of_several_events():
    log = Log(blocks=4, per_block=5, seed=8)
    diagnostics = Diagnostics.of(log.evidence()[0])
    assert diagnostics.events == 20
    assert diagnostics.effective_sample_size == pytest.approx(log.w.sum() ** 2 / (log.w**2).sum())
    assert diagnostics.mean_weight == pytest.approx(log.w.mean())
    assert (diagnostics.min_weight, diagnostics.max_weight) == pytest.approx((log.w.min(), log.w.max()))
    assert (diagnostics.min_propensity, diagnostics.max_propensity) == pytest.approx((log.propensity.min(), log.propensity.max()))
    assert diagnostics.to_json() == {
        "events": 20, "effective_sample_size": diagnostics.effective_sample_size, "mean_weight": diagnostics.mean_weight,
        "min_propensity": diagnostics.min_propensity, "max_propensity": diagnostics.max_propensity,
        "min_weight": diagnostics.min_weight, "max_weight": diagnostics.max_weight,
    }


def test_small_weights_still_give_their_effective_sample_size():
    log = Log(blocks=3, per_block=1, seed=9)
    scaled = log.pi * 0.0
    rows = np.arange(3)
    scaled[rows, log.chosen] = 0.05 * log.propensity  # w = 0.05 each: Σw² = 0.0075, well below 1
    scaled[rows, (log.chosen + 1) % ACTIONS] = 1 - scaled[rows, log.chosen]
    diagnostics = Diagnostics.of(log.evidence(targets=[scaled])[0])
    assert diagnostics.effective_sample_size == pytest.approx(3.0)


def test_a_target_that_never_plays_the_logged_actions_has_no_effective_sample():
    log = Log(blocks=4, per_block=2, seed=10, target_zero=True)
    (evidence,) = log.evidence()
    diagnostics = Diagnostics.of(evidence)
    assert diagnostics.effective_sample_size == 0.0
    assert diagnostics.mean_weight == 0.0 and diagnostics.max_weight == 0.0
    assert IPS().estimate(evidence).value == 0.0
    snips = SNIPS().estimate(evidence, 0.9)  # Σw = 0: self-normalizing has nothing to divide by
    # NaN, not None: reports format every field as a number
    assert all(math.isnan(field) for field in (snips.value, snips.lower, snips.upper, snips.std_error))
    assert snips.to_json() == {
        "estimator": "snips", "value": None, "lower": None, "upper": None, "std_error": None, "confidence": 0.9, "interval": "normal",
    }


def test_a_deterministic_logging_policy_is_accepted_and_propensities_above_one_are_not():
    builder = EvidenceBuilder(RidgeRewardModel(2), targets=1)
    features = np.ones((1, 1, 2))
    builder.add(Batch(("a",), np.zeros((1, 2)), np.ones((1, 2)), np.ones(1), np.ones(1)), features, np.zeros(1, dtype=int), [np.ones((1, 1))])
    (evidence,) = builder.build()
    assert IPS().estimate(evidence).value == 1.0
    with pytest.raises(ValueError, match=r"^logged propensities must be in \(0, 1\]; the log cannot support off-policy estimates otherwise$"):
        builder.add(Batch(("a",), np.zeros((1, 2)), np.ones((1, 2)), np.ones(1), np.array([1.5])), features, np.zeros(1, dtype=int), [np.ones((1, 1))])


def test_refusals_say_what_is_wrong():
    with pytest.raises(ValueError, match="^cross-fitting needs at least 2 folds, got 1$"):
        EvidenceBuilder(RidgeRewardModel(2), targets=1, folds=1)
    with pytest.raises(ValueError, match="^no logged events to evaluate$"):
        EvidenceBuilder(RidgeRewardModel(2), targets=1).build()
    builder = EvidenceBuilder(RidgeRewardModel(2), targets=2)
    with pytest.raises(ValueError, match="^expected probabilities of 2 targets, got 1$"):
        builder.add(Batch(("a",), np.zeros((1, 2)), np.ones((1, 2)), np.ones(1), np.ones(1)), np.ones((1, 1, 2)), np.zeros(1, dtype=int), [np.ones((1, 1))])


@pytest.mark.parametrize("confidence", [0.0, 1.0, 1.5, -0.5])
def test_a_confidence_outside_the_open_unit_interval_is_refused(confidence):
    (evidence,) = Log(blocks=4, per_block=1, seed=11).evidence()
    for method in estimators(replicates=5):
        with pytest.raises(ValueError, match=f"^confidence must be between 0 and 1 \\(exclusive\\), got {confidence!r}$"):
            method.estimate(evidence, confidence)


def test_a_paired_difference_needs_the_same_blocks_and_the_same_log():
    log = Log(blocks=6, per_block=2, seed=12)
    (a,) = log.evidence()
    (same_count,) = Log(blocks=6, per_block=3, seed=12).evidence()  # six blocks too, but of other sizes
    (fewer,) = Log(blocks=5, per_block=2, seed=12).evidence()
    for other in (same_count, fewer):
        for method in (IPS(), SNIPS(), DoublyRobust()):
            with pytest.raises(ValueError, match="^a paired difference needs two targets evaluated on the same blocks$"):
                method.difference(a, other)
    (b,) = Log(blocks=6, per_block=2, seed=13).evidence()
    with pytest.raises(ValueError, match="^a paired difference needs two targets evaluated on the same log$"):
        DirectMethod(replicates=5).difference(a, b)


def test_a_paired_difference_is_named_after_its_estimator_and_is_the_difference_of_the_values():
    log = Log(blocks=8, per_block=2, seed=14)
    uniform = np.full_like(log.pi, 1.0 / ACTIONS)
    a, b = log.evidence(targets=[log.pi, uniform])
    for method in estimators(replicates=20):
        difference = method.difference(a, b, 0.9)
        assert difference.estimator == method.name
        assert difference.value == pytest.approx(method.estimate(a).value - method.estimate(b).value)
        assert difference.lower < difference.value < difference.upper


def test_ratio_estimate_refuses_parts_and_signs_of_different_lengths():
    part = (np.array([1.0, 2.0]), np.array([1.0, 1.0]))
    with pytest.raises(ValueError):
        ratio_estimate("ips", [part, part], [1.0], 0.95)
