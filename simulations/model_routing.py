"""A population to route among real, registered models, each accurate on some segments only.

Every request belongs to a segment (``chat``, ``code``, ``math``) and has a true
binary label, ``w_segment · x > 0``. The models below compute that label and
then answer wrongly on a share of inputs fixed by their per-segment accuracy, so
which model is best depends on the segment, and is known. They are plain
vectorized numpy models, registered by import path::

    decide models register small simulations.model_routing:small --set 'inputs=["task^segment=chat", ...]'

(``INPUTS`` is that list.) Whether an answer is wrong is a deterministic
function of the input and the model, so a backend process and this module
agree on it without sharing any state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

SEGMENTS = ("chat", "code", "math")
SHARES = (0.4, 0.3, 0.3)
N_NUMERIC = 4
INPUTS = [f"task^segment={segment}" for segment in SEGMENTS] + [f"task^x{j}" for j in range(N_NUMERIC)]
ACCURACY: dict[str, tuple[float, float, float]] = {
    "small": (0.90, 0.40, 0.30),
    "coder": (0.50, 0.90, 0.45),
    "solver": (0.45, 0.50, 0.90),
}
"""Each model's probability of answering correctly, per segment (in the order of ``SEGMENTS``)."""

WEIGHTS = np.array([[1.0, -0.5, 0.25, 0.0], [-0.3, 1.0, 0.0, 0.6], [0.2, 0.1, -1.0, 0.8]])
_MIX = np.array([12.9898, 78.233, 37.719, 4.581])


class SegmentModel:
    """Right with probability ``ACCURACY[name][segment]``, decided by a hash of the input."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.accuracy = np.array(ACCURACY[name])
        self.salt = float(sorted(ACCURACY).index(name) + 1) * 17.17

    def predict(self, batch: np.ndarray) -> np.ndarray:
        segment = batch[:, : len(SEGMENTS)].argmax(axis=1)
        numeric = batch[:, len(SEGMENTS):]
        truth = np.einsum("ij,ij->i", numeric, WEIGHTS[segment]) > 0
        uniform = np.modf(np.abs(np.sin(numeric @ _MIX + self.salt)) * 43758.5453)[0]
        right = uniform < self.accuracy[segment]
        return np.where(right, truth, ~truth).astype(np.int64)


small = SegmentModel("small")
coder = SegmentModel("coder")
solver = SegmentModel("solver")


@dataclass(frozen=True)
class Task:
    segment: str
    context: list[dict[str, Any]]
    label: int


@dataclass
class ModelRoutingPopulation:
    """Draws tasks; rewards a prediction 1 when it is the task's label."""

    seed: int = 0
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    @staticmethod
    def best(segment: str) -> str:
        index = SEGMENTS.index(segment)
        return max(ACCURACY, key=lambda model: ACCURACY[model][index])

    def next_task(self) -> Task:
        index = int(self.rng.choice(len(SEGMENTS), p=SHARES))
        numeric = [round(float(value), 4) for value in self.rng.normal(size=N_NUMERIC)]
        label = int(np.dot(numeric, WEIGHTS[index]) > 0)
        context = [{"task": {"segment": SEGMENTS[index], **{f"x{j}": value for j, value in enumerate(numeric)}}}]
        return Task(SEGMENTS[index], context, label)

    @staticmethod
    def reward(task: Task, prediction: Any) -> float:
        return float(prediction == task.label)
