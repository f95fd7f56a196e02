"""Synthetic populations whose best action per context is known, so learning can be checked.

Each round draws a context; each action's expected reward is a function of the
context and the action; the reward drawn is Bernoulli. Features come out in
Personalizer's JSON shape, so the same environment drives decide in process or
over HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Round:
    context: list[dict[str, Any]]
    actions: list[dict[str, Any]]
    expected: dict[str, float]

    @property
    def best(self) -> str:
        return max(self.expected, key=self.expected.__getitem__)


@dataclass
class LinearPayoff:
    """Click probability linear in (segment, action) plus numeric context × action weights.

    ``segments`` are categorical user kinds; each action is best for some segment,
    so a context-free policy cannot do well and a contextual one can.
    """

    n_actions: int = 5
    n_segments: int = 4
    n_numeric: int = 4
    base_rate: float = 0.1
    lift: float = 0.6
    seed: int = 0
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.favourite = self.rng.integers(0, self.n_actions, size=self.n_segments)
        self.weights = self.rng.normal(0.0, 0.05, size=(self.n_actions, self.n_numeric))

    def action_ids(self) -> list[str]:
        return [f"article-{i}" for i in range(self.n_actions)]

    def next_round(self) -> Round:
        segment = int(self.rng.integers(self.n_segments))
        numeric = self.rng.normal(size=self.n_numeric)
        context = [
            {"user": {"segment": f"s{segment}", **{f"x{j}": round(float(v), 4) for j, v in enumerate(numeric)}}},
            {"device": {"mobile": bool(self.rng.random() < 0.5)}},
        ]
        actions = [{"id": action_id, "features": [{"topic": f"t{i % 3}"}]} for i, action_id in enumerate(self.action_ids())]
        expected = {}
        for i, action_id in enumerate(self.action_ids()):
            p = self.base_rate + self.lift * (self.favourite[segment] == i) + float(self.weights[i] @ numeric)
            expected[action_id] = float(np.clip(p, 0.0, 1.0))
        return Round(context, actions, expected)

    def reward(self, played: Round, action_id: str) -> float:
        return float(self.rng.random() < played.expected[action_id])
