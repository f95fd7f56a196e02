"""Probability vectors, shared by every policy: scores become the logged distribution.

The helpers turn scores or Monte Carlo draws into the probability vector every
decision logs, and enforce the exploration floor that keeps propensities usable
for off-policy evaluation. Thompson sampling's compiled kernels
(``decide/policies/_thompson.c``) are reached from here.
"""

from __future__ import annotations

import numpy as np

try:
    from decide.policies import _thompson
except ImportError:  # installed without a C compiler: numpy does it all
    _thompson = None
COMPILED = _thompson is not None
"""Whether Thompson sampling's compiled kernels were built (``decide serve`` says so when they were not)."""


def eligible_indices(eligible: np.ndarray) -> np.ndarray:
    """Indices of the eligible actions; a decision without any cannot be made."""
    indices = np.flatnonzero(eligible)
    if indices.size == 0:
        raise ValueError("no eligible action")
    return indices


def uniform_distribution(eligible: np.ndarray) -> np.ndarray:
    """Equal probability on every eligible action, zero elsewhere."""
    indices = eligible_indices(eligible)
    p = np.zeros(len(eligible))
    p[indices] = 1.0 / indices.size
    return p


def floor_mix(p: np.ndarray, eligible: np.ndarray, floor: float) -> np.ndarray:
    """Mix ``p`` with uniform so each eligible action gets at least ``floor / k_eligible``.

    ``p' = (1 - floor) p + floor / k_eligible`` on eligible actions and exactly 0
    on the others; renormalized so rounding never breaks the sum. Written for
    the common case of every action eligible: it runs on every decision, where
    each numpy call on these few numbers costs more than its arithmetic.
    """
    if not 0.0 <= floor < 1.0:
        raise ValueError(f"floor must be in [0, 1), got {floor}")
    mask = np.asarray(eligible, dtype=bool)
    count = np.count_nonzero(mask)
    if count == 0:
        raise ValueError("no eligible action")
    mixed = (1.0 - floor) * p + floor * (1.0 / count)
    if count < mask.size:
        mixed[~mask] = 0.0
    return mixed / mixed.sum()


def argmax_distribution(scores: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """All mass on the best eligible action; ties go to the lowest index (deterministic)."""
    indices = eligible_indices(eligible)
    p = np.zeros(len(eligible))
    p[indices[np.argmax(scores[indices])]] = 1.0
    return p


def antithetic_win_frequencies(
    means: np.ndarray, factor: np.ndarray, normals: np.ndarray, eligible: np.ndarray, samples: int, compiled: bool = True
) -> np.ndarray:
    """``win_frequencies`` of the draws ``means ± normals @ factor.T``, the first ``samples`` of them.

    Row i of ``normals`` gives the pair of draws i and m + i (m rows); with an odd
    ``samples`` the last minus draw is left out. ``decide/policies/_thompson.c``
    computes the same in one call when it is built (``compiled``), without numpy's
    per-call costs and GIL releases, which on ten actions outweigh the arithmetic.
    """
    if compiled and _thompson is not None:
        eligible_indices(eligible)
        counts = np.zeros(len(means), dtype=np.int64)
        _thompson.win_counts(means, np.ascontiguousarray(factor), normals, eligible, samples, counts)
        return counts / samples
    noise = normals @ factor.T
    return win_frequencies(np.concatenate((means + noise, means - noise))[:samples], eligible)


def compiled_shared_thompson(
    features: np.ndarray,
    theta: np.ndarray | None,
    chol: np.ndarray | None,
    normals: np.ndarray,
    eligible: np.ndarray,
    samples: int,
    scale: float,
    floor: float,
    singular_pivot: float,
) -> np.ndarray | None:
    """``LinearThompson``'s shared-mode probabilities in one compiled call, or None where numpy must decide.

    The same arithmetic as its numpy definition after the normals are drawn:
    scores X θ + v C z with C Cᵀ = v² (X L)(X L)ᵀ, antithetic win counts, the floor
    (``decide/policies/_thompson.c``). None when the kernel is not built, when the
    arrays are not those of a served snapshot (the prior has no θ yet), and when the
    kernel finds non-finite scores or a singular covariance (a Cholesky pivot at most
    ``singular_pivot`` of its diagonal entry): the numpy definition then raises, or
    factors by eigendecomposition.
    """
    if _thompson is None or theta is None or chol is None:
        return None
    k, d = len(eligible), len(theta)
    arrays = ((features, np.float64, (k, d)), (theta, np.float64, (d,)), (chol, np.float32, (d, d)), (eligible, np.bool_, (k,)))
    if not all(isinstance(a, np.ndarray) and a.dtype == dtype and a.shape == shape and a.flags.c_contiguous for a, dtype, shape in arrays):
        return None
    probabilities = np.empty(k)
    if not _thompson.shared_probabilities(features, theta, chol, normals, eligible, samples, scale, floor, singular_pivot, probabilities):
        return None
    return probabilities


def win_frequencies(draws: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """Share of sampled rows of ``draws`` (samples by actions) in which each eligible action wins.

    This is the Monte Carlo estimate of Thompson sampling's choice probabilities;
    ties go to the lowest index, as in ``argmax_distribution``.
    """
    indices = eligible_indices(eligible)
    if indices.size == len(eligible):  # the usual case: no copy of the draws
        winners = np.argmax(draws, axis=1)
    else:
        winners = indices[np.argmax(draws[:, indices], axis=1)]
    return np.bincount(winners, minlength=len(eligible)) / draws.shape[0]
