"""Replay (Li et al. 2011) on uniformly-logged traffic reproduces the policy's online result."""

from __future__ import annotations

import numpy as np
import pytest

from decide.evaluation.replay import replay
from simulations.runner import run


def test_replay_matches_the_online_result_on_uniformly_logged_data_within_its_interval(small):
    logged = run(small.select(["uniform"], rounds=8000), keep_log=True).traces[0]
    linucb = next(spec for spec in small.policies if spec.label == "linucb")
    replayed = replay(logged.log, linucb.config, rate=small.rate)
    assert replayed.matched == pytest.approx(8000 / 4, rel=0.1), "a uniform policy over 4 actions matches a quarter"
    online = run(small.select(["linucb"], rounds=replayed.matched, seeds=[0, 1, 2, 3]))
    online_mean = float(np.mean([trace.joined.mean() for trace in online.traces]))
    estimate = replayed.estimate
    assert estimate.lower <= online_mean <= estimate.upper, (online_mean, estimate)
    uniform_mean = logged.joined.mean()
    assert estimate.lower > uniform_mean, "the replayed policy learned: it beats the logging policy"


def test_replay_refuses_a_log_that_was_not_uniform(small):
    learned = run(small.select(["linucb"], rounds=300), keep_log=True).traces[0]
    with pytest.raises(ValueError, match="not logged uniformly"):
        replay(learned.log, small.policies[0].config)
