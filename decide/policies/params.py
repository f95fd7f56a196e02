"""Validation of policy configuration and inputs.

Configuration arrives from API users as JSON, so each check names the parameter
and the allowed range in a message a person can act on. Input arrays are checked
because one non-finite value would poison additive state for good.
"""

from __future__ import annotations

import math

import numpy as np

from decide.errors import Invalid


def _interval(low: float, high: float, low_open: bool, high_open: bool) -> str:
    left = "(" if low_open else "["
    right = ")" if high_open or high == math.inf else "]"
    return f"{left}{low:g}, {high:g}{right}"


def check_real(
    name: str,
    value: object,
    low: float,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Require a finite number in the interval from ``low`` to ``high``."""
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > low if low_open else value >= low)
        and (value < high if high_open else value <= high)
    )
    if not ok:
        raise ValueError(
            f"{name} must be a number in {_interval(low, high, low_open, high_open)}, got {value!r}"
        )


def check_int(name: str, value: object, low: int, high: int) -> None:
    """Require an integer in ``[low, high]``."""
    if not (isinstance(value, int) and not isinstance(value, bool) and low <= value <= high):
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")


def check_bool(name: str, value: object) -> None:
    """Require a boolean (JSON ``true``/``false``)."""
    if not isinstance(value, bool):
        # ValueError like every other configuration error: callers report it to the user.
        raise ValueError(f"{name} must be true or false, got {value!r}")  # noqa: TRY004


class NonFiniteInput(Invalid):
    """An input array holds NaN or an infinity; in a decision, feature values so large that their products overflow."""


def shaped_array(value: object, shape: tuple[int, ...], what: str) -> np.ndarray:
    """``value`` as a float64 array of exactly ``shape``."""
    array = np.asarray(value, dtype=np.float64)
    if array.shape != shape:
        raise ValueError(f"{what} has shape {array.shape}, expected {shape}")
    return array


def checked_array(value: object, shape: tuple[int, ...], what: str) -> np.ndarray:
    """``value`` as a finite float64 array of exactly ``shape``."""
    array = shaped_array(value, shape, what)
    if not np.isfinite(array).all():
        raise NonFiniteInput(f"{what} contains a non-finite value")
    return array
