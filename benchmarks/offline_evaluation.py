"""Offline evaluation throughput: simulator decisions per second and estimator events per second.

    python benchmarks/offline_evaluation.py            # measure, print, and update docs/benchmarks.md
    python benchmarks/offline_evaluation.py --quick    # smaller runs, print only

1. Simulator: every policy of the ``linear-contextual`` scenario in process
   (featurization, decision, learning through decide.learning, as the learner does), one
   seed, at the scenario's feature dimension and at 256.
2. Estimators, end to end: ``compare`` on a uniformly-logged simulated log
   (featurizing every decision, three standard targets, then a learning
   candidate too), including DM's 200-replicate bootstrap.
3. Estimators alone: evidence from pre-featurized dense arrays and the four
   estimates, without featurization.

Each figure is given per wall-clock second and per CPU second of this process:
the second is steadier on a shared machine. BLAS runs single-threaded (set
before numpy loads): on a small, busy machine its threads only contend.
The section "## Offline evaluation" of docs/benchmarks.md is replaced (or added);
other sections are left as they are.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import platform
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from decide.evaluation.estimators import EvidenceBuilder, estimators
from decide.evaluation.offline import compare
from decide.evaluation.reward_model import RidgeRewardModel
from decide.policies import Batch
from simulations.runner import run, run_policy
from simulations.scenario import load_scenario

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADING = "## Offline evaluation"


def timed(work: Callable[..., Any], *args: Any) -> tuple[Any, float, float]:
    """``work(*args)``'s result, wall seconds and CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = work(*args)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def simulator(rounds: int) -> list[list[str]]:
    scenario = load_scenario("linear-contextual").select(rounds=rounds, seeds=[0])
    rows = []
    for dimension in (scenario.policies[0].config.featureDimension, 256):
        for spec in scenario.policies:
            config = type(spec.config).from_json({"featureDimension": dimension}, base=spec.config)
            trace, wall, cpu = timed(run_policy, scenario, type(spec)(spec.label, config), 0)
            rows.append([spec.label, str(dimension), f"{trace.rounds / wall:,.0f}", f"{trace.rounds / cpu:,.0f}"])
    return rows


def end_to_end(events: int) -> list[list[str]]:
    scenario = load_scenario("linear-contextual").select(["uniform"], rounds=events, seeds=[0])
    log = run(scenario, keep_log=True).traces[0].log
    config = scenario.policies[0].config
    rows = []
    for candidates in ((), ("linucb:alpha=0.5",)):
        _, wall, cpu = timed(compare, log, config, candidates)
        label = "online, baseline, uniform" + (" + learning linucb" if candidates else "")
        rows.append([label, str(config.featureDimension), f"{events:,}", f"{events / wall:,.0f}", f"{events / cpu:,.0f}"])
    return rows


def estimators_alone(events: int, dimension: int = 64, actions: int = 5) -> list[list[str]]:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(events, actions, dimension))
    chosen = rng.integers(actions, size=events)
    rewards = rng.random(events)
    target = rng.dirichlet(np.ones(actions), size=events)
    rows_ = np.arange(events)

    def work() -> None:
        builder = EvidenceBuilder(RidgeRewardModel(dimension=dimension), targets=1)
        for rows in np.array_split(rows_, 200):
            batch = Batch(tuple(map(str, chosen[rows])), np.zeros((len(rows), dimension)), features[rows, chosen[rows]],
                          rewards[rows], np.full(len(rows), 1 / actions))
            builder.add(batch, features[rows], chosen[rows], [target[rows]])
        evidence = builder.build()[0]
        for method in estimators():
            method.estimate(evidence)

    _, wall, cpu = timed(work)
    return [["IPS, SNIPS, DM (200 bootstrap refits), DR", str(dimension), f"{events:,}", f"{events / wall:,.0f}", f"{events / cpu:,.0f}"]]


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def section(sim: list[list[str]], e2e: list[list[str]], alone: list[list[str]], rounds: int) -> str:
    load = os.getloadavg()[0]
    return f"""{HEADING}

Measured {datetime.now(UTC):%Y-%m-%d} with `python benchmarks/offline_evaluation.py` on {os.cpu_count()} cores
({platform.processor() or platform.machine()}, Python {platform.python_version()}, load average {load:.1f} at the end:
other work shared the machine, so per-CPU-second figures are the steadier ones). BLAS single-threaded.

Simulator, in process, `linear-contextual` (5 actions), {rounds:,} rounds per policy, learning every simulated second:

{table(["policy", "feature dimension", "decisions/s (wall)", "decisions/s (CPU)"], sim)}

Estimators end to end (`compare`: featurize every logged decision, score every target, all four estimators
with DM's 200-replicate bootstrap) on a uniformly-logged simulated log:

{table(["targets", "feature dimension", "events", "events/s (wall)", "events/s (CPU)"], e2e)}

Estimators alone, from pre-featurized arrays (200 blocks, one target):

{table(["estimators", "feature dimension", "events", "events/s (wall)", "events/s (CPU)"], alone)}

Featurizing the log dominates end to end; the estimators themselves cost little per event, and DM's
bootstrap costs O(replicates × folds × (blocks × d² + d³)) whatever the log's length.
"""


def update_docs(text: str) -> None:
    current = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(HEADING)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(current):
        updated = pattern.sub(lambda _: text + "\n", current)
    else:
        updated = current.rstrip("\n") + "\n\n" + text
    DOCS.write_text(updated.rstrip("\n") + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller runs; print only, do not update the docs")
    args = parser.parse_args()
    rounds, events = (500, 2_000) if args.quick else (3_000, 20_000)
    text = section(simulator(rounds), end_to_end(events), estimators_alone(events * 5), rounds)
    print(text)
    if not args.quick:
        update_docs(text)
        print(f"updated {DOCS}")


if __name__ == "__main__":
    main()
