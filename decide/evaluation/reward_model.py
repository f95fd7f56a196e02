"""The reward model of the direct method and doubly robust estimates: ridge regression, cross-fitted over blocks.

q̂(x, a) = θᵀxₐ is exactly what a shared-mode linear policy learns from the same
events: the same statistics (Σ x xᵀ, Σ r x) and the same ridge solution. It weighs
every logged event equally (a loop's forgetting is for serving, not for estimating).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from decide.config import LoopConfig
from decide.policies import Arrays, Batch
from decide.policies.linear import ridge_statistics
from decide.policies.params import checked_array

MEMORY_FLOATS = 2**24
"""Bootstrap refits are solved in slices of at most this many matrix entries (128 MiB)."""


@dataclass(frozen=True)
class RidgeRewardModel:
    """Ridge regression of the reward on the chosen action's features, over ``dimension`` features."""

    dimension: int
    ridge: float = 1.0

    @classmethod
    def for_loop(cls, config: LoopConfig) -> RidgeRewardModel:
        """The model over a loop's features, with the loop's ridge if its policy has one."""
        return cls(config.featureDimension, config.policyParams.get("ridge", 1.0))

    def statistics(self, batch: Batch) -> Arrays:
        """What fitting needs from ``batch``: Σ x xᵀ and Σ r x over the chosen actions' features."""
        n = len(batch)
        rewards = checked_array(batch.rewards, (n,), "rewards")
        weights = checked_array(batch.weight_vector(), (n,), "weights")
        return ridge_statistics(checked_array(batch.features, (n, self.dimension), "features"), rewards, weights)

    def fit(self, xx: np.ndarray, xr: np.ndarray) -> np.ndarray:
        """θ = (λI + Σ x xᵀ)⁻¹ Σ r x for each of a stack of statistics (… × d × d and … × d), in one batched solve."""
        return np.linalg.solve(self.ridge * np.eye(self.dimension) + xx, xr[..., None])[..., 0]


@dataclass(frozen=True, eq=False)
class CrossFittedModel:
    """A ``RidgeRewardModel`` fitted once per fold of blocks, on every other fold: block j is scored by a fit
    that never saw it. ``statistics`` holds one row per block; ``folds`` each block's fold."""

    model: RidgeRewardModel
    statistics: Arrays
    folds: np.ndarray
    _cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    def coefficients(self) -> np.ndarray:
        """θ of each fold's model (folds × d), fitted once on every other fold's blocks."""
        return self.bootstrap(0, 0)[1][0]

    def bootstrap(self, replicates: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Block counts (replicates × blocks) and the fold coefficients refitted on each, computed once.

        Zero replicates stands for the fit on the log itself (every block once).
        """
        key = (replicates, seed)
        if key not in self._cache:
            blocks = len(self.folds)
            if replicates:
                rng = np.random.default_rng(seed)
                counts = rng.multinomial(blocks, np.full(blocks, 1.0 / blocks), size=replicates).astype(float)
            else:
                counts = np.ones((1, blocks))
            self._cache[key] = (counts, self._solve(counts))
        return self._cache[key]

    def _solve(self, counts: np.ndarray) -> np.ndarray:
        """Coefficients (replicates × folds × d) for each row of block ``counts``, in batched solves.

        Solved for many replicates and folds at once because a bootstrap needs hundreds.
        """
        d = self.model.dimension
        blocks = len(self.folds)
        folds = int(self.folds.max()) + 1
        grams = self.statistics["xx"].reshape(blocks, d * d)
        step = max(1, MEMORY_FLOATS // (folds * d * d))
        thetas = []
        for start in range(0, len(counts), step):
            rows = counts[start : start + step]
            outside = np.stack([np.where(self.folds == fold, 0.0, rows) for fold in range(folds)], axis=1)
            xx = (outside @ grams).reshape(len(rows), folds, d, d)
            xr = outside @ self.statistics["xr"]
            thetas.append(self.model.fit(xx, xr))
        return np.concatenate(thetas)
