"""Off-policy estimators: what a target policy would have earned on the logged traffic.

Pure math over numpy and scipy, in the style of the Open Bandit Pipeline: one
small class per estimator. They read ``Evidence``: a log summed per block of
consecutive events (one event per block on small logs, ``n / blocks`` on large
ones), which keeps memory independent of the log's length and makes every
interval robust to dependence between neighbouring events.

Every estimate is a ratio of block sums, V = Σⱼ Tⱼ / Σⱼ Dⱼ:

* IPS:   Tⱼ = Σ wᵢ rᵢ,                          Dⱼ = nⱼ
* SNIPS: Tⱼ = Σ wᵢ rᵢ,                          Dⱼ = Σ wᵢ
* DM:    Tⱼ = Σᵢ Σₐ π(a|xᵢ) q̂(xᵢ, a),          Dⱼ = nⱼ
* DR:    Tⱼ = DM's Tⱼ + Σ wᵢ (rᵢ − q̂(xᵢ, aᵢ)), Dⱼ = nⱼ

with wᵢ = π(aᵢ|xᵢ) / μ(aᵢ|xᵢ), π the target and μ the logging policy. The reward
model q̂ is the ridge regression the linear policies learn (``RidgeRewardModel``),
fitted per fold of blocks and cross-fitted: block j is scored by a model that
never saw it. Since
q̂ is linear in its features, DM's and DR's block sums need only each block's
target-weighted feature sums, never the events themselves.

Intervals are closed form where there is one (the delta method for a ratio of
sums, with Student's t over blocks) and a block bootstrap otherwise: DM's value
depends on the fitted model as much as on the events, so its bootstrap refits
the model in every replicate from the blocks' additive statistics.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from scipy.special import stdtrit

from decide.evaluation.reward_model import CrossFittedModel, RidgeRewardModel
from decide.policies import Arrays, Batch


@dataclass(frozen=True)
class Evidence:
    """One target policy's view of a log, summed per block of consecutive events."""

    counts: np.ndarray
    weighted_rewards: np.ndarray
    weights: np.ndarray
    squared_weights: np.ndarray
    direct: np.ndarray
    """(blocks, d): Σᵢ Σₐ π(a|xᵢ) xᵢₐ, the features the target would have played."""
    chosen: np.ndarray
    """(blocks, d): Σᵢ wᵢ xᵢ,ₐᵢ, the logged features reweighted to the target."""
    propensity_range: tuple[float, float]
    weight_range: tuple[float, float]
    model: CrossFittedModel

    @property
    def blocks(self) -> int:
        return len(self.counts)


class EvidenceBuilder:
    """Sums a log block by block for several target policies at once.

    Blocks must be added in time order; each becomes one row of the evidence,
    and blocks are dealt round-robin into ``folds`` for cross-fitting.
    """

    def __init__(self, model: RidgeRewardModel, targets: int, folds: int = 3) -> None:
        if folds < 2:
            raise ValueError(f"cross-fitting needs at least 2 folds, got {folds}")
        self.model = model
        self.folds = folds
        self.statistics: list[Arrays] = []
        self.rows: list[list[tuple[float, ...]]] = [[] for _ in range(targets)]
        self.vectors: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(targets)]
        self.propensities = (math.inf, -math.inf)

    def add(self, batch: Batch, features: np.ndarray, chosen: np.ndarray, targets: Sequence[np.ndarray]) -> None:
        """One block: the logged ``batch``, every candidate's ``features`` (events × actions × d,
        zero-padded), the ``chosen`` index per event, and each target's probabilities (events × actions)."""
        if len(targets) != len(self.rows):
            raise ValueError(f"expected probabilities of {len(self.rows)} targets, got {len(targets)}")
        propensities = np.asarray(batch.propensities, dtype=float)
        if not (propensities > 0).all() or not (propensities <= 1).all():
            raise ValueError("logged propensities must be in (0, 1]; the log cannot support off-policy estimates otherwise")
        self.statistics.append(self.model.statistics(batch))
        self.propensities = (min(self.propensities[0], propensities.min()), max(self.propensities[1], propensities.max()))
        rows = np.arange(len(batch))
        rewards = np.asarray(batch.rewards, dtype=float)
        for target, probabilities in enumerate(targets):
            w = probabilities[rows, chosen] / propensities
            self.rows[target].append((len(batch), w @ rewards, w.sum(), w @ w, w.min(), w.max()))
            direct = np.einsum("ek,ekd->d", probabilities, features)
            self.vectors[target].append((direct, w @ batch.features))

    def build(self) -> list[Evidence]:
        """The evidence of every target, in the order their probabilities were given."""
        if not self.statistics:
            raise ValueError("no logged events to evaluate")
        blocks = len(self.statistics)
        keys = self.statistics[0].keys()
        model = CrossFittedModel(
            self.model,
            {key: np.stack([statistics[key] for statistics in self.statistics]) for key in keys},
            np.arange(blocks) % min(self.folds, blocks),
        )
        evidence = []
        for rows, vectors in zip(self.rows, self.vectors, strict=True):
            table = np.array(rows, dtype=float)
            evidence.append(
                Evidence(
                    counts=table[:, 0],
                    weighted_rewards=table[:, 1],
                    weights=table[:, 2],
                    squared_weights=table[:, 3],
                    direct=np.array([direct for direct, _ in vectors]),
                    chosen=np.array([chosen for _, chosen in vectors]),
                    propensity_range=(float(self.propensities[0]), float(self.propensities[1])),
                    weight_range=(float(table[:, 4].min()), float(table[:, 5].max())),
                    model=model,
                )
            )
        return evidence


@dataclass(frozen=True)
class Estimate:
    """A policy value with its interval; bounds are NaN when the log is too short to have one."""

    estimator: str
    value: float
    lower: float
    upper: float
    std_error: float
    confidence: float
    interval: str

    def to_json(self) -> dict[str, Any]:
        return {
            key: (None if isinstance(value, float) and not math.isfinite(value) else value)
            for key, value in vars(self).items()
        }


Totals = tuple[np.ndarray, np.ndarray]


def ratio_estimate(name: str, parts: Sequence[Totals], signs: Sequence[float], confidence: float) -> Estimate:
    """Σₚ sₚ ΣTₚ/ΣDₚ over the same blocks, with a delta-method interval (Student's t, blocks − 1 df).

    Each block's influence is Σₚ sₚ (Tₚⱼ − Vₚ Dₚⱼ) / ΣDₚ; the variance is
    m/(m − 1) times the sum of their squares (the cluster-robust sandwich), which
    is the usual s²/n when every block holds one event.
    """
    _check_confidence(confidence)
    value = 0.0
    influence = np.zeros(len(parts[0][0]))
    for (totals, sizes), sign in zip(parts, signs, strict=True):
        size = float(np.sum(sizes))
        if size == 0.0:  # SNIPS of a target that gives no logged action a chance (Σw = 0): there is no estimate
            return Estimate(name, math.nan, math.nan, math.nan, math.nan, confidence, "normal")
        part = float(np.sum(totals)) / size
        value += sign * part
        influence += sign * (totals - part * sizes) / size
    blocks = len(influence)
    if blocks < 2:
        return Estimate(name, value, math.nan, math.nan, math.nan, confidence, "normal")
    error = math.sqrt(blocks / (blocks - 1) * float(influence @ influence))
    half = float(stdtrit(blocks - 1, (1 + confidence) / 2)) * error
    return Estimate(name, value, value - half, value + half, error, confidence, "normal")


class Estimator(ABC):
    """One off-policy estimator: block sums, and from them an estimate or a paired difference."""

    name: ClassVar[str]
    title: ClassVar[str]

    @abstractmethod
    def totals(self, evidence: Evidence) -> Totals:
        """Per-block numerator and denominator; the estimate is the ratio of their sums."""

    def estimate(self, evidence: Evidence, confidence: float = 0.95) -> Estimate:
        return ratio_estimate(self.name, [self.totals(evidence)], [1.0], confidence)

    def difference(self, a: Evidence, b: Evidence, confidence: float = 0.95) -> Estimate:
        """``a``'s value minus ``b``'s on the same log; pairing by block cancels their shared noise."""
        if a.blocks != b.blocks or not np.array_equal(a.counts, b.counts):
            raise ValueError("a paired difference needs two targets evaluated on the same blocks")
        return ratio_estimate(self.name, [self.totals(a), self.totals(b)], [1.0, -1.0], confidence)


class IPS(Estimator):
    """Inverse propensity scoring: unbiased whenever the logging policy gave the target's actions a chance."""

    name = "ips"
    title = "IPS"

    def totals(self, evidence: Evidence) -> Totals:
        return evidence.weighted_rewards, evidence.counts


class SNIPS(Estimator):
    """Self-normalized IPS: divides by the weights' sum instead of n; slightly biased, much less variable."""

    name = "snips"
    title = "SNIPS"

    def totals(self, evidence: Evidence) -> Totals:
        return evidence.weighted_rewards, evidence.weights


@dataclass(frozen=True)
class DirectMethod(Estimator):
    """The reward model's prediction of what the target would earn; right only if the model is.

    No closed-form interval accounts for the model's own estimation error, so the
    interval is a percentile bootstrap over blocks that refits the model in each
    of ``replicates`` resamples.
    """

    replicates: int = 200
    seed: int = 0
    name: ClassVar[str] = "dm"
    title: ClassVar[str] = "DM"

    def totals(self, evidence: Evidence) -> Totals:
        return self._direct(evidence, evidence.model.coefficients()), evidence.counts

    def estimate(self, evidence: Evidence, confidence: float = 0.95) -> Estimate:
        return self._bootstrap([evidence], [1.0], confidence)

    def difference(self, a: Evidence, b: Evidence, confidence: float = 0.95) -> Estimate:
        if a.model is not b.model:
            raise ValueError("a paired difference needs two targets evaluated on the same log")
        return self._bootstrap([a, b], [1.0, -1.0], confidence)

    def _direct(self, evidence: Evidence, fold_thetas: np.ndarray) -> np.ndarray:
        return np.einsum("jd,jd->j", evidence.direct, fold_thetas[evidence.model.folds])

    def _bootstrap(self, evidence: Sequence[Evidence], signs: Sequence[float], confidence: float) -> Estimate:
        _check_confidence(confidence)
        point = ratio_estimate(self.name, [self.totals(e) for e in evidence], signs, confidence).value
        if evidence[0].blocks < 2:
            return Estimate(self.name, point, math.nan, math.nan, math.nan, confidence, "bootstrap")
        model = evidence[0].model
        counts, thetas = model.bootstrap(self.replicates, self.seed)
        values = np.zeros(len(counts))
        blocks = np.arange(len(model.folds))
        for e, sign in zip(evidence, signs, strict=True):
            per_block = np.einsum("jd,rfd->rjf", e.direct, thetas)[:, blocks, model.folds]
            values += sign * (counts * per_block).sum(1) / (counts @ e.counts)
        lower, upper = np.quantile(values, [(1 - confidence) / 2, (1 + confidence) / 2])
        return Estimate(self.name, point, float(lower), float(upper), float(np.std(values, ddof=1)), confidence, "bootstrap")


class DoublyRobust(Estimator):
    """DM corrected by IPS on the model's residuals: unbiased if either the propensities or the model are right.

    With cross-fitting the model's error enters only to second order, so the
    closed-form interval is valid without refitting.
    """

    name = "dr"
    title = "DR"

    def totals(self, evidence: Evidence) -> Totals:
        thetas = evidence.model.coefficients()[evidence.model.folds]
        correction = np.einsum("jd,jd->j", evidence.direct - evidence.chosen, thetas)
        return evidence.weighted_rewards + correction, evidence.counts


def estimators(replicates: int = 200, seed: int = 0) -> tuple[Estimator, ...]:
    """One of each estimator, in the order reports show them."""
    return (IPS(), SNIPS(), DirectMethod(replicates, seed), DoublyRobust())


@dataclass(frozen=True)
class Diagnostics:
    """Whether the log supports estimates for a target: overlap and weight spread.

    The effective sample size (Σw)²/Σw² is how many events the estimate is
    worth; the mean weight should be near 1 when the target's actions had
    support under the logging policy.
    """

    events: int
    effective_sample_size: float
    mean_weight: float
    min_propensity: float
    max_propensity: float
    min_weight: float
    max_weight: float

    @classmethod
    def of(cls, evidence: Evidence) -> Diagnostics:
        weights = float(evidence.weights.sum())
        squares = float(evidence.squared_weights.sum())
        events = int(evidence.counts.sum())
        return cls(
            events=events,
            effective_sample_size=weights * weights / squares if squares > 0 else 0.0,
            mean_weight=weights / events,
            min_propensity=evidence.propensity_range[0],
            max_propensity=evidence.propensity_range[1],
            min_weight=evidence.weight_range[0],
            max_weight=evidence.weight_range[1],
        )

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence!r}")
