"""Shared pieces of the evaluation tests: a small scenario, and logs simulated from it."""

from __future__ import annotations

import json

import pytest

from simulations.runner import run
from simulations.scenario import Scenario, parse_scenario

SMALL = {
    "name": "small",
    "environment": {"kind": "linear", "n_actions": 4, "n_segments": 3, "n_numeric": 2},
    "delivery": {"delay": 0.2, "missing": 0.05},
    "rounds": 1200,
    "rate": 50,
    "seeds": [0],
    "loop": {"rewardWaitTime": 1, "updateInterval": 0.5, "featureDimension": 32},
    "policies": {
        "uniform": {"policy": "uniform"},
        "linucb": {"policy": "linucb", "policyParams": {"alpha": 0.5}},
    },
}


@pytest.fixture
def small_document() -> dict:
    """The small scenario as a document, to vary in a test."""
    return json.loads(json.dumps(SMALL))


@pytest.fixture(scope="session")
def small() -> Scenario:
    return parse_scenario(SMALL)


@pytest.fixture(scope="session")
def uniform_log(small):
    """A uniformly-logged trace of the small scenario, with its decisions and the simulator's truth."""
    return run(small.select(["uniform"]), keep_log=True).traces[0]
