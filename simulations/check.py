"""Check the off-policy estimators against the simulator's ground truth.

One policy's log (its first seed) is evaluated for every policy of the
scenario. The simulator knows each action's expected reward, so the exact value
of what the estimators estimate is known: for each logged context, the target's
probabilities times the expected joined reward q·E[r|x, a] + (1 − q)·default,
where q is the chance a reward arrives within the wait time. An estimator is
right when its interval covers that truth.

When the log is uniform, replay (Li et al.) is also run for each learning
policy and compared with that policy's own online mean reward over as many
rounds as replay matched: replay's claim is about the policy deployed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from decide.evaluation.logs import LoggedExample
from decide.evaluation.offline import evaluate
from decide.evaluation.replay import replay
from decide.evaluation.targets import Candidate, Online, Target
from decide.events.schemas import Decision
from decide.policies.base import ActionSet
from simulations.runner import SimulationResult


class _Truth(Target):
    """Passes a target through and adds up its exact expected reward on each logged context."""

    def __init__(self, inner: Target, expectations: dict[str, dict[str, float]], on_time: float, default: float) -> None:
        self.inner = inner
        self.label = inner.label
        self.description = inner.description
        self.space = inner.space
        self.expectations = expectations
        self.on_time = on_time
        self.default = default
        self.values: list[float] = []

    def probabilities(self, decision: Decision, actions: ActionSet) -> np.ndarray:
        p = self.inner.probabilities(decision, actions)
        expected = self.expectations[decision.event_id]
        joined = np.array([self.on_time * expected[i] + (1 - self.on_time) * self.default for i in actions.ids])
        self.values.append(float(p @ joined))
        return p

    def learn(self, examples: Sequence[LoggedExample]) -> None:
        self.inner.learn(examples)


def check_estimators(result: SimulationResult, logging_label: str, progress: bool = False) -> dict[str, Any]:
    """Estimates of every policy from ``logging_label``'s log, each with its truth (and replay when possible)."""
    specs = {spec.label: spec for spec in result.scenario.policies}
    if logging_label not in specs:
        raise ValueError(f"no policy {logging_label!r} to take the log of; the scenario has {', '.join(specs)}")
    trace = result.of(logging_label)[0]
    if not trace.log:
        raise ValueError("the simulation kept no log; run it with keep_log=True")
    config = specs[logging_label].config
    expectations = {example.decision.event_id: expected for example, expected in zip(trace.log, trace.expectations)}
    on_time = result.scenario.delivery.on_time(config.rewardWaitTime)
    inner: list[Target] = [Online(), *(Candidate(label, spec.config) for label, spec in specs.items() if label != logging_label)]
    targets = [_Truth(target, expectations, on_time, config.defaultReward) for target in inner]
    evaluation = evaluate(trace.log, config, targets, progress=progress).to_json()
    uniform = all(np.allclose(e.decision.probabilities, 1 / len(e.decision.probabilities)) for e in trace.log)
    for policy, target in zip(evaluation["policies"], targets, strict=True):
        policy["truth"] = float(np.mean(target.values))
        label = logging_label if policy["policy"] == "online" else policy["policy"]
        if uniform and label != logging_label:
            spec = specs[label]
            replayed = replay(trace.log, spec.config, rate=result.scenario.rate, progress=progress)
            online = np.mean([t.joined[: replayed.matched].mean() for t in result.of(label)])
            policy["replay"] = {**replayed.estimate.to_json(), "matched": replayed.matched, "online_mean_reward": float(online)}
    return {"logging": logging_label, **evaluation}
