"""Evaluate policies on a log: Personalizer-style comparisons and a guarded parameter search.

The log is read once, in time order, one block at a time: each block's
decisions are featurized the way the loop featurized them, every target scores
them, candidates then learn from them, and the estimators' evidence grows by
one row. So a candidate is judged only on decisions it had not yet learned from.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import IO, Any

import numpy as np
from tqdm import tqdm

from decide.config import LoopConfig
from decide.evaluation.estimators import (
    Diagnostics,
    Estimate,
    Evidence,
    EvidenceBuilder,
    estimators,
)
from decide.evaluation.logs import LoggedExample
from decide.evaluation.reward_model import RidgeRewardModel
from decide.evaluation.targets import (
    Candidate,
    FirstAction,
    Online,
    Target,
    Uniform,
    parse_candidates,
)
from decide.events.schemas import Decision
from decide.features import FeatureSpace
from decide.learning import batch_of
from decide.policies import ActionSet

LINEAR = ("linucb", "linear_thompson", "epsilon_greedy")


def default_search(config: LoopConfig) -> list[str]:
    """What ``optimize`` tries when told nothing: model settings of the loop's policy, not its exploration.

    A log shows how well a policy would have exploited what this traffic
    taught, not what its own exploration would have taught it, so exploration
    settings are better tried in simulation or with replay on uniform logs.
    """
    if config.policy in LINEAR:
        return [f"{config.policy}:ridge=0.1|0.3|1|3|10,interactions=true|false"]
    if config.policy == "beta_thompson":
        return ["beta_thompson:prior_alpha=0.5|1|2,prior_beta=0.5|1|2", "linucb", "linear_thompson"]
    return ["linucb:ridge=0.1|1|10", "linear_thompson:ridge=0.1|1|10"]


@dataclass(frozen=True)
class Options:
    """How to evaluate: block count (the unit of intervals and of candidates' learning), folds, confidence."""

    blocks: int = 200
    folds: int = 3
    confidence: float = 0.95
    replicates: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        if self.blocks < 2:
            raise ValueError(f"blocks must be at least 2, got {self.blocks}")
        if self.folds < 2:
            raise ValueError(f"folds must be at least 2, got {self.folds}")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be between 0 and 1, got {self.confidence}")
        if self.replicates < 10:
            raise ValueError(f"replicates must be at least 10, got {self.replicates}")


@dataclass(frozen=True)
class PolicyResult:
    label: str
    description: str
    estimates: dict[str, Estimate]
    diagnostics: Diagnostics
    evidence: Evidence = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.label,
            "description": self.description,
            "estimates": {name: estimate.to_json() for name, estimate in self.estimates.items()},
            "diagnostics": self.diagnostics.to_json(),
        }


@dataclass(frozen=True)
class Evaluation:
    """Every target's estimates on one log."""

    events: int
    start: float
    end: float
    options: Options
    results: list[PolicyResult]

    def result(self, label: str) -> PolicyResult:
        for result in self.results:
            if result.label == label:
                return result
        raise KeyError(label)

    def to_json(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "start": self.start,
            "end": self.end,
            "blocks": self.results[0].evidence.blocks if self.results else 0,
            "confidence": self.options.confidence,
            "policies": [result.to_json() for result in self.results],
        }

    def write_csv(self, stream: IO[str]) -> None:
        """One row per policy and estimator."""
        writer = csv.writer(stream)
        writer.writerow(["policy", "estimator", "value", "lower", "upper", "std_error", "interval", "effective_sample_size"])
        for result in self.results:
            for estimate in result.estimates.values():
                writer.writerow([
                    result.label, estimate.estimator, estimate.value, estimate.lower, estimate.upper,
                    estimate.std_error, estimate.interval, result.diagnostics.effective_sample_size,
                ])


def evaluate(
    examples: Iterable[LoggedExample],
    config: LoopConfig,
    targets: Sequence[Target],
    options: Options = Options(),
    progress: bool = False,
) -> Evaluation:
    """Estimate every target's value on the learnable ``examples`` logged by a loop configured as ``config``.

    Block by block, in time order: featurize the block's decisions, let every target
    score them, add the block to the evidence, and only then let the targets learn it.
    """
    log = _learnable_in_time_order(examples)
    featurizer = _Featurizer(config, targets)
    builder = EvidenceBuilder(RidgeRewardModel.for_loop(config), len(targets), options.folds)
    with tqdm(total=len(log), unit="event", desc="evaluating", disable=not progress, leave=False) as bar:
        for block in _blocks(log, options.blocks):
            decisions = [e.decision for e in block]
            featurized = featurizer.featurize(decisions)
            features, chosen = featurizer.logged_features(featurized, decisions)
            probabilities = [_probabilities(target, decisions, featurizer.sets_for(target, featurized), features.shape[1]) for target in targets]
            batch = replace(batch_of(config, decisions, [e.reward for e in block]), weights=None)
            builder.add(batch, features, chosen, probabilities)
            for target in targets:
                target.learn(block)
            bar.update(len(block))
    results = _results(targets, builder.build(), options)
    return Evaluation(len(log), log[0].decision.timestamp, log[-1].decision.timestamp, options, results)


def _learnable_in_time_order(examples: Iterable[LoggedExample]) -> list[LoggedExample]:
    log = sorted((e for e in examples if e.learnable), key=lambda e: e.decision.timestamp)
    if not log:
        raise ValueError("there are no logged decisions with joined rewards to evaluate in this range")
    return log


def _blocks(log: list[LoggedExample], count: int) -> Iterator[list[LoggedExample]]:
    """``log`` in ``count`` consecutive blocks of nearly equal size (one event each when it is shorter)."""
    for rows in np.array_split(np.arange(len(log)), min(len(log), count)):
        yield [log[i] for i in rows]


class _Featurizer:
    """Featurizes a block's decisions in the loop's feature space and in every other space a target needs."""

    def __init__(self, config: LoopConfig, targets: Sequence[Target]) -> None:
        self.space = config.feature_space()
        self.spaces = (self.space, *{target.space for target in targets if target.space is not None and target.space != self.space})

    def featurize(self, decisions: Sequence[Decision]) -> dict[FeatureSpace, list[ActionSet]]:
        return {s: [s.action_set(d.context, d.actions, d.excluded) for d in decisions] for s in self.spaces}

    def logged_features(
        self, featurized: dict[FeatureSpace, list[ActionSet]], decisions: Sequence[Decision]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Every action's vector in the loop's space (events × widest action set × d, zero-padded), and the chosen index."""
        logged = featurized[self.space]
        width = max(len(actions.ids) for actions in logged)
        features = np.zeros((len(decisions), width, self.space.dimension))
        for i, actions in enumerate(logged):
            features[i, : len(actions.ids)] = actions.features
        chosen = np.array([actions.ids.index(d.chosen) for actions, d in zip(logged, decisions)])
        return features, chosen

    def sets_for(self, target: Target, featurized: dict[FeatureSpace, list[ActionSet]]) -> list[ActionSet]:
        """The action sets in ``target``'s space, or in the loop's where any space does."""
        return featurized[target.space if target.space in featurized else self.space]


def _probabilities(target: Target, decisions: Sequence[Decision], sets: Sequence[ActionSet], width: int) -> np.ndarray:
    """``target``'s probability of each action of each decision (events × ``width``, zero-padded)."""
    table = np.zeros((len(decisions), width))
    for i, (decision, actions) in enumerate(zip(decisions, sets)):
        table[i, : len(actions.ids)] = target.probabilities(decision, actions)
    return table


def _results(targets: Sequence[Target], evidence: Sequence[Evidence], options: Options) -> list[PolicyResult]:
    """Every estimator's estimate, and the diagnostics, of each target."""
    methods = estimators(options.replicates, options.seed)
    return [
        PolicyResult(
            target.label,
            target.description,
            {method.name: method.estimate(of_target, options.confidence) for method in methods},
            Diagnostics.of(of_target),
            of_target,
        )
        for target, of_target in zip(targets, evidence, strict=True)
    ]


def standard_targets() -> list[Target]:
    """What Personalizer's offline evaluation always shows: the online policy, the baseline, uniform."""
    return [Online(), FirstAction(), Uniform()]


def compare(
    examples: Iterable[LoggedExample],
    config: LoopConfig,
    candidates: Sequence[str] = (),
    options: Options = Options(),
    progress: bool = False,
) -> Evaluation:
    """The standard targets and every candidate named by spec (``linucb:alpha=2``, see ``parse_candidates``)."""
    targets: list[Target] = standard_targets()
    for spec in candidates:
        targets += [Candidate(label, candidate, options.seed) for label, candidate in parse_candidates(spec, config)]
    return evaluate(examples, config, targets, options, progress)


@dataclass(frozen=True)
class Recommendation:
    """The best candidate found, its paired advantage over the online policy, and whether to switch."""

    evaluation: Evaluation
    best: str
    config: LoopConfig | None
    advantage: Estimate
    recommended: bool
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "recommended": self.recommended,
            "message": self.message,
            "best": self.best,
            "config": self.config.to_json() if self.config else None,
            "advantage": self.advantage.to_json(),
            "evaluation": self.evaluation.to_json(),
        }


def optimize(
    examples: Iterable[LoggedExample],
    config: LoopConfig,
    search: Sequence[str] | None = None,
    options: Options = Options(),
    progress: bool = False,
) -> Recommendation:
    """Search candidate settings on the log and recommend one only if it is reliably better.

    Candidates are ranked by their doubly robust estimate. The best one is
    recommended only when the lower bound of its paired DR advantage over the
    online policy is above zero at a Bonferroni-corrected level: picking the
    best of many noisy estimates favours the lucky ones, and the correction
    keeps the chance of recommending a change that is not better below 1 − confidence.
    """
    specs = default_search(config) if search is None else search
    grid = [(label, candidate) for spec in specs for label, candidate in parse_candidates(spec, config)]
    if not grid:
        raise ValueError("the search names no candidate settings")
    targets: list[Target] = [Online(), *(Candidate(label, candidate, options.seed) for label, candidate in grid)]
    evaluation = evaluate(examples, config, targets, options, progress)
    online = evaluation.results[0]
    ranked = sorted(evaluation.results[1:], key=lambda r: r.estimates["dr"].value, reverse=True)
    best = ranked[0]
    level = 1 - (1 - options.confidence) / len(grid)
    dr = next(method for method in estimators() if method.name == "dr")
    advantage = dr.difference(best.evidence, online.evidence, level)
    recommended = math.isfinite(advantage.lower) and advantage.lower > 0
    if recommended:
        message = (
            f"switch to {best.label}: it would have earned {advantage.value:+.4f} per decision "
            f"(at least {advantage.lower:+.4f} at {level:.2%} confidence, corrected for {len(grid)} candidates)"
        )
    else:
        message = (
            f"keep the current policy: the best candidate, {best.label}, is not reliably better "
            f"({advantage.value:+.4f} per decision, lower bound {advantage.lower:+.4f} at {level:.2%} confidence)"
        )
    return Recommendation(evaluation, best.label, dict(grid)[best.label], advantage, recommended, message)
