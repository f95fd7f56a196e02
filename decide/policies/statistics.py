"""Arithmetic on statistics: the only way a policy's state changes.

Statistics are sums, so deltas from any number of learners combine in any order,
and replaying the same examples gives the same state.
"""

from __future__ import annotations

import numpy as np

from decide.policies.base import Arrays


def merge(state: Arrays, delta: Arrays, discount: float = 1.0) -> Arrays:
    """Return ``discount * state + delta`` key-wise over the union of keys.

    A discount below one forgets old evidence geometrically (non-stationary
    loops); the inputs are never mutated.
    """
    if not 0.0 < discount <= 1.0:
        raise ValueError(f"discount must be in (0, 1], got {discount}")
    merged: Arrays = {}
    for key in state.keys() | delta.keys():
        if key not in delta:
            merged[key] = discount * state[key]
        elif key not in state:
            merged[key] = np.array(delta[key], dtype=np.float64)
        elif state[key].shape != delta[key].shape:
            raise ValueError(
                f"cannot merge {key!r}: shape {state[key].shape} vs {delta[key].shape}"
            )
        else:
            merged[key] = discount * state[key] + delta[key]
    return merged
