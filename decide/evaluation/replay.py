"""Replay (Li et al. 2011): run a learning policy on uniformly-logged traffic as if it were live.

Walk the log in order; on each decision let the policy choose; when it chooses
what was logged, it sees the logged reward (and learns from it), otherwise the
event is skipped. With uniform logging every kept event is a fair draw of what
the policy would have met online, so the kept rewards estimate its online
reward after as many decisions as were kept. Any other logging policy biases
replay; use the estimators in ``offline`` for those logs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from decide.config import LoopConfig
from decide.evaluation.estimators import Estimate, ratio_estimate
from decide.evaluation.logs import LoggedExample
from decide.evaluation.targets import Candidate


@dataclass(frozen=True)
class ReplayResult:
    """The matched events' rewards in order, and their mean with its interval."""

    events: int
    rewards: np.ndarray
    estimate: Estimate

    @property
    def matched(self) -> int:
        return len(self.rewards)


def replay(
    examples: Iterable[LoggedExample],
    config: LoopConfig,
    rate: float | None = None,
    confidence: float = 0.95,
    seed: int = 0,
    progress: bool = False,
) -> ReplayResult:
    """Replay ``config``'s policy on uniformly-logged ``examples``, learning as the loop would.

    The matched events are the deployed policy's timeline: the k-th match stands
    for its k-th decision, at ``rate`` decisions per second (by default the log's
    own rate). So a match becomes learnable ``rewardWaitTime`` seconds' worth of
    matches later, and the policy learns once per ``updateInterval``'s worth,
    as the joiner and learner would have let it. Raises ValueError naming the
    first event that was not logged uniformly.
    """
    log = sorted((e for e in examples if e.learnable), key=lambda e: e.decision.timestamp)
    if rate is None:
        span = log[-1].decision.timestamp - log[0].decision.timestamp if log else 0.0
        rate = (len(log) - 1) / span if span > 0 else float("inf")
    if not rate > 0:
        raise ValueError(f"rate must be positive, got {rate}")
    delay = config.rewardWaitTime * rate
    learn_every = max(1, round(config.updateInterval * rate)) if np.isfinite(rate) else 1
    candidate = Candidate(config.policy, config, seed)
    space = config.feature_space()
    rng = np.random.default_rng(seed)
    rewards: list[float] = []
    waiting: deque[tuple[int, LoggedExample]] = deque()
    for example in tqdm(log, unit="event", desc="replaying", disable=not progress, leave=False):
        decision = example.decision
        actions = space.action_set(decision.context, decision.actions, decision.excluded)
        logged = np.asarray(decision.probabilities)
        eligible = logged[actions.eligible]
        if not np.allclose(eligible, 1.0 / eligible.size, atol=1e-6):
            raise ValueError(
                f"event {decision.event_id} was not logged uniformly (probabilities {decision.probabilities}); "
                "replay is unbiased only for uniform logging: use the off-policy estimators instead"
            )
        probabilities = candidate.probabilities(decision, actions)
        if actions.ids[rng.choice(len(probabilities), p=probabilities)] != decision.chosen:
            continue
        waiting.append((len(rewards), example))
        rewards.append(example.reward)
        if len(rewards) % learn_every == 0:
            closed = []
            while waiting and waiting[0][0] + delay <= len(rewards):
                closed.append(waiting.popleft()[1])
            candidate.learn(closed)
    if not rewards:
        raise ValueError("replay matched no event; the log is too short for this policy")
    values = np.array(rewards)
    estimate = ratio_estimate("replay", [(values, np.ones(len(values)))], [1.0], confidence)
    return ReplayResult(len(log), values, estimate)
