"""Run policies through a scenario: in process (fast) or against a live decide over HTTP.

In process, each policy is a loop in miniature on a simulated clock: decisions
are featurized and drawn exactly as the API draws them, each join closes
``rewardWaitTime`` after its decision with the reward if it arrived in time
(else the loop's default reward), and the policy learns what has closed by the
learner's own rules (``decide.learning``: at most once per ``updateInterval``, with
forgetting), producing a new version. Over HTTP the same population is
sent to a running service, rewards are posted after their (real) delays, and the
service does the rest.

Every policy meets the same contexts for a given seed (the environment is
seeded by it), so differences between policies are not luck of the draw.
"""

from __future__ import annotations

import csv
import heapq
import json
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from decide.client import ApiError, Client
from decide.evaluation.logs import LoggedExample
from decide.events.schemas import Decision
from decide.learning import statistics_after, update_due
from decide.policies import Arrays
from simulations.scenario import PolicySpec, Scenario

CURVE_POINTS = 200


@dataclass
class Trace:
    """One policy's run through one seed, round by round."""

    label: str
    seed: int
    rewards: np.ndarray
    expected: np.ndarray
    """Expected reward of the chosen action."""
    best: np.ndarray
    """Expected reward of the oracle's action."""
    joined: np.ndarray
    """The reward as the loop learned it: observed in time, or the loop's default reward."""
    chosen: list[str]
    propensities: np.ndarray
    versions: np.ndarray
    seconds: float
    log: list[LoggedExample] = field(default_factory=list)
    """With ``keep_log``: the decisions as the loop logged them, with joined rewards."""
    expectations: list[dict[str, float]] = field(default_factory=list)
    """With ``keep_log``: every action's expected reward in each round (the simulator's ground truth)."""

    @property
    def rounds(self) -> int:
        return len(self.rewards)

    @property
    def regret(self) -> np.ndarray:
        """Cumulative expected regret against the oracle, which knows every action's expected reward."""
        return np.cumsum(self.best - self.expected)

    @property
    def decisions_per_second(self) -> float:
        return self.rounds / self.seconds if self.seconds > 0 else float("inf")


@dataclass
class SimulationResult:
    scenario: Scenario
    traces: list[Trace]
    mode: str = "in-process"

    def labels(self) -> list[str]:
        return list(dict.fromkeys(trace.label for trace in self.traces))

    def of(self, label: str) -> list[Trace]:
        return [trace for trace in self.traces if trace.label == label]

    def summary(self) -> list[dict[str, Any]]:
        """Per policy: mean over seeds of cumulative reward and regret, with the regret's standard error."""
        rows = []
        for label in self.labels():
            traces = self.of(label)
            regrets = np.array([trace.regret[-1] for trace in traces])
            rows.append({
                "policy": label,
                "seeds": len(traces),
                "rounds": traces[0].rounds,
                "mean_reward": float(np.mean([trace.rewards.mean() for trace in traces])),
                "cumulative_reward": float(np.mean([trace.rewards.sum() for trace in traces])),
                "cumulative_regret": float(regrets.mean()),
                "regret_std_error": float(regrets.std(ddof=1) / np.sqrt(len(regrets))) if len(regrets) > 1 else 0.0,
                "decisions_per_second": float(np.mean([trace.decisions_per_second for trace in traces])),
                "versions": int(np.mean([trace.versions[-1] for trace in traces])),
            })
        return rows

    def curves(self, points: int = CURVE_POINTS) -> list[dict[str, Any]]:
        """Cumulative reward and regret at ``points`` evenly spaced rounds, per policy and seed."""
        rows = []
        for trace in self.traces:
            rewards = np.cumsum(trace.rewards)
            regret = trace.regret
            for index in checkpoints(trace.rounds, points):
                rows.append({
                    "policy": trace.label,
                    "seed": trace.seed,
                    "round": int(index + 1),
                    "cumulative_reward": float(rewards[index]),
                    "cumulative_regret": float(regret[index]),
                    "version": int(trace.versions[index]),
                })
        return rows

    def to_json(self, points: int = CURVE_POINTS) -> dict[str, Any]:
        """Everything a report needs, small enough to keep: curves at checkpoints, not every round."""
        policies = {}
        for label in self.labels():
            traces = self.of(label)
            chosen = [action for trace in traces for action in trace.chosen]
            ids, counts = np.unique(np.array(chosen, dtype=str), return_counts=True)
            propensities = np.concatenate([trace.propensities for trace in traces])
            window = max(1, traces[0].rounds // 50)
            policies[label] = {
                "actions": {str(i): int(c) for i, c in zip(ids, counts)},
                "propensities": np.histogram(propensities, bins=20, range=(0.0, 1.0))[0].tolist(),
                "reward_rate": [_moving_mean(trace.rewards, window, points).tolist() for trace in traces],
            }
        return {
            "mode": self.mode,
            "scenario": self.scenario.to_json(),
            "summary": self.summary(),
            "curves": self.curves(points),
            "policies": policies,
        }

    def write(self, directory: Path, document: dict[str, Any] | None = None) -> dict[str, Path]:
        """``results.json`` (``document``, by default ``to_json()``) and ``curves.csv`` in ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        results = directory / "results.json"
        results.write_text(json.dumps(self.to_json() if document is None else document, indent=1))
        curves = directory / "curves.csv"
        with curves.open("w", newline="") as stream:
            rows = self.curves()
            writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        return {"results": results, "curves": curves}


def checkpoints(rounds: int, points: int) -> np.ndarray:
    """Indices of about ``points`` evenly spaced rounds, always including the last."""
    return np.unique(np.linspace(0, rounds - 1, min(points, rounds)).round().astype(int))


def _moving_mean(values: np.ndarray, window: int, points: int) -> np.ndarray:
    """Mean of the last ``window`` values at each checkpoint."""
    sums = np.concatenate([[0.0], np.cumsum(values)])
    ends = checkpoints(len(values), points) + 1
    starts = np.maximum(0, ends - window)
    return (sums[ends] - sums[starts]) / (ends - starts)


def run(scenario: Scenario, keep_log: bool = False, progress: bool = False) -> SimulationResult:
    """Every policy of ``scenario`` through every seed, in process."""
    traces = []
    with tqdm(total=len(scenario.policies) * len(scenario.seeds) * scenario.rounds, unit="decision", disable=not progress) as bar:
        for spec in scenario.policies:
            for seed in scenario.seeds:
                bar.set_description(f"{spec.label} seed {seed}")
                traces.append(run_policy(scenario, spec, seed, keep_log, bar.update))
    return SimulationResult(scenario, traces)


def run_policy(
    scenario: Scenario, spec: PolicySpec, seed: int, keep_log: bool = False, advance: Callable[[int], Any] | None = None
) -> Trace:
    """One policy through one seed on the simulated clock; ``keep_log`` also keeps the logged decisions."""
    config = spec.config
    environment = scenario.environment_for(seed)
    space = config.feature_space()
    policy = config.build_policy()
    rng = np.random.default_rng([seed, zlib.crc32(spec.label.encode())])
    arrivals = np.random.default_rng([seed, 1])
    statistics: Arrays = {}
    snapshot = policy.snapshot(statistics)
    version, version_made_at = 1, 0.0
    joins: deque[tuple[float, Decision, float]] = deque()
    rounds = scenario.rounds
    rewards, expected, best, joined, propensities = (np.zeros(rounds) for _ in range(5))
    versions = np.zeros(rounds, dtype=int)
    chosen_ids: list[str] = []
    log: list[LoggedExample] = []
    expectations: list[dict[str, float]] = []
    started = time.perf_counter()
    for t in range(rounds):
        now = t / scenario.rate
        if update_due(config, version_made_at, now) and joins and joins[0][0] <= now:
            closed = []
            while joins and joins[0][0] <= now:
                closed.append(joins.popleft())
            decisions, learned_rewards = [decision for _, decision, _ in closed], [reward for _, _, reward in closed]
            statistics = statistics_after(config, policy, statistics, decisions, learned_rewards)
            snapshot = policy.snapshot(statistics)
            version, version_made_at = version + 1, now
        played = environment.next_round()
        actions = space.action_set(played.context, played.actions)
        probabilities = policy.probabilities(snapshot, actions, rng)
        index = int(rng.choice(len(probabilities), p=probabilities))
        action_id = actions.ids[index]
        reward = environment.reward(played, action_id)
        delay = scenario.delivery.sample(arrivals)
        observed = delay is not None and delay <= config.rewardWaitTime
        learned = reward if observed else config.defaultReward
        decision = Decision(
            event_id=f"{spec.label}-{seed}-{t}", loop=spec.label, timestamp=now, policy_version=version,
            context=played.context, actions=played.actions, excluded=[], chosen=action_id,
            probabilities=probabilities.tolist(),
        )
        joins.append((now + config.rewardWaitTime, decision, learned))
        rewards[t], expected[t], best[t] = reward, played.expected[action_id], played.expected[played.best]
        joined[t], propensities[t], versions[t] = learned, probabilities[index], version
        chosen_ids.append(action_id)
        if keep_log:
            log.append(LoggedExample(decision, learned, "observed" if observed else "default"))
            expectations.append(played.expected)
        if advance is not None and (t + 1) % 256 == 0:
            advance(256)
    if advance is not None:
        advance(rounds % 256)
    seconds = time.perf_counter() - started
    return Trace(spec.label, seed, rewards, expected, best, joined, chosen_ids, propensities, versions, seconds, log, expectations)


def run_http(
    scenario: Scenario, client: Client, loop_prefix: str = "sim-", progress: bool = False, clock: Callable[[], float] = time.monotonic
) -> SimulationResult:
    """Every policy and seed of ``scenario`` against a running service, one loop each.

    A loop that already exists is reconfigured and reset, so a scenario can be
    rerun. Rewards are posted once their delay has passed; those that would
    arrive after the loop's reward wait time, or never, are not sent (the
    service then applies its default reward, as it would in production).
    """
    traces = []
    with tqdm(total=len(scenario.policies) * len(scenario.seeds) * scenario.rounds, unit="decision", disable=not progress) as bar:
        for spec in scenario.policies:
            for seed in scenario.seeds:
                loop = f"{loop_prefix}{scenario.name}-{spec.label}-{seed}"
                _fresh_loop(client, loop, spec)
                traces.append(_run_http_policy(scenario, spec, seed, client, loop, clock, bar.update))
    return SimulationResult(scenario, traces, mode="http")


def _fresh_loop(client: Client, loop: str, spec: PolicySpec) -> None:
    try:
        client.request("POST", "/loops", {"name": loop, "config": spec.config.to_json()})
    except ApiError as error:
        if error.status != 409:
            raise
        client.request("PATCH", f"/loops/{loop}/config", spec.config.to_json())
        client.request("POST", f"/loops/{loop}/reset")


def _run_http_policy(
    scenario: Scenario, spec: PolicySpec, seed: int, client: Client, loop: str, clock: Callable[[], float], advance: Callable[[int], Any]
) -> Trace:
    environment = scenario.environment_for(seed)
    arrivals = np.random.default_rng([seed, 1])
    rounds = scenario.rounds
    rewards, expected, best, joined, propensities = (np.zeros(rounds) for _ in range(5))
    versions = np.zeros(rounds, dtype=int)
    chosen_ids: list[str] = []
    due: list[tuple[float, str, float]] = []
    started = clock()
    for t in range(rounds):
        _post_due(client, loop, due, clock())
        played = environment.next_round()
        answer = client.rank(played.context, played.actions, loop=loop)
        action_id = answer["rewardActionId"]
        reward = environment.reward(played, action_id)
        delay = scenario.delivery.sample(arrivals)
        if delay is not None and delay <= spec.config.rewardWaitTime:
            heapq.heappush(due, (clock() + delay, answer["eventId"], reward))
            joined[t] = reward
        else:
            joined[t] = spec.config.defaultReward
        rewards[t], expected[t], best[t] = reward, played.expected[action_id], played.expected[played.best]
        propensities[t] = next(item["probability"] for item in answer["ranking"] if item["id"] == action_id)
        versions[t] = answer["policyVersion"]
        chosen_ids.append(action_id)
        advance(1)
    seconds = clock() - started
    while due:
        time.sleep(max(0.0, due[0][0] - clock()))
        _post_due(client, loop, due, clock())
    return Trace(spec.label, seed, rewards, expected, best, joined, chosen_ids, propensities, versions, seconds)


def _post_due(client: Client, loop: str, due: list[tuple[float, str, float]], now: float) -> None:
    while due and due[0][0] <= now:
        _, event_id, value = heapq.heappop(due)
        client.reward(event_id, value, loop=loop)
