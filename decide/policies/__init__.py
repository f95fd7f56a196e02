"""Bandit policies: pure math over numpy/scipy, deterministic given a random generator.

``make_policy`` builds one by name and parameters (a loop's settings reach it
through ``LoopConfig.build_policy``) and is the place where configuration errors
become messages for API users.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

from decide.policies.base import ActionSet, Arrays, Batch, Policy
from decide.policies.context_free import BetaThompson, UniformRandom
from decide.policies.distributions import argmax_distribution, floor_mix
from decide.policies.linear import EpsilonGreedy, LinearPolicy, LinearThompson, LinUCB
from decide.policies.statistics import merge

POLICIES: dict[str, type[Policy]] = {
    cls.name: cls for cls in (LinUCB, LinearThompson, BetaThompson, EpsilonGreedy, UniformRandom)
}


def make_policy(name: str, dimension: int, params: Mapping[str, object]) -> Policy:
    """The policy ``name`` configured by ``params``; ``dimension`` goes to policies that use it.

    Raises ValueError naming the unknown policy or parameter and what is allowed.
    """
    cls = POLICIES.get(name)
    if cls is None:
        raise ValueError(f"unknown policy {name!r}; allowed: {', '.join(POLICIES)}")
    parameters = inspect.signature(cls).parameters
    allowed = [parameter for parameter in parameters if parameter != "dimension"]
    unknown = [key for key in params if key not in allowed]
    if unknown:
        listed = ", ".join(repr(key) for key in unknown)
        plural = "s" if len(unknown) > 1 else ""
        raise ValueError(
            f"policy {name!r} has no parameter{plural} {listed}; "
            f"allowed: {', '.join(allowed) or 'none'}"
        )
    arguments = {**params, "dimension": dimension} if "dimension" in parameters else dict(params)
    try:
        return cls(**arguments)
    except ValueError as error:
        raise ValueError(f"policy {name!r}: {error}") from error


__all__ = [
    "POLICIES",
    "ActionSet",
    "Arrays",
    "Batch",
    "BetaThompson",
    "EpsilonGreedy",
    "LinUCB",
    "LinearPolicy",
    "LinearThompson",
    "Policy",
    "UniformRandom",
    "argmax_distribution",
    "floor_mix",
    "make_policy",
    "merge",
]
