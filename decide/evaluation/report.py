"""Self-contained HTML reports: plots as embedded PNGs, tables, no scripts and nothing fetched.

One report per loop (its logged traffic, the estimator table, actions,
propensities and policy versions) and one per simulation (regret and reward
curves, actions, propensities, versions over rounds). Anyone can open the file
offline or attach it to a change request.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from decide.evaluation.logs import LoggedExample
from decide.evaluation.offline import Evaluation
from decide.extras import require

LINES = ["-", "--", "-.", ":"]
"""Line styles cycled with the colours, so curves that coincide (a shared update cadence) stay visible."""
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
p.lead { color: #555; margin-top: 0; } p.note { color: #555; font-size: 0.9rem; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: right; } th { background: #f4f4f4; }
td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; height: auto; display: block; margin: 0.5rem 0; }
.good { color: #2a7d2a; font-weight: 600; } .bad { color: #b22; font-weight: 600; }
"""


def _pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display needed), imported only when a report is drawn."""
    matplotlib = require("matplotlib", "report")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _image(figure: Any, alt: str) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(figure)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], css: str = "") -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell(value)}</td>" for value in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "–" if not math.isfinite(value) else f"{value:.4g}"
    return html.escape(str(value))


def _page(title: str, lead: str, sections: Sequence[tuple[str, str]]) -> str:
    body = "".join(f"<section><h2>{html.escape(heading)}</h2>{content}</section>" for heading, content in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f'<body><h1>{html.escape(title)}</h1><p class="lead">{lead}</p>{body}</body></html>\n'
    )


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def estimates_table(evaluation: Evaluation) -> str:
    """Every policy's estimates as value [lower, upper], with the diagnostics that say whether to trust them."""
    confidence = f"{evaluation.options.confidence:.0%}"
    names = list(evaluation.results[0].estimates)
    headers = ["policy", *(f"{evaluation.results[0].estimates[n].estimator.upper()} ({confidence})" for n in names)]
    headers += ["effective sample size", "mean weight", "max weight"]
    rows = []
    for result in evaluation.results:
        cells = [f"{e.value:.4f} [{e.lower:.4f}, {e.upper:.4f}]" for e in result.estimates.values()]
        d = result.diagnostics
        rows.append([result.label, *cells, round(d.effective_sample_size, 1), d.mean_weight, d.max_weight])
    return _table(headers, rows, "estimates")


def _forest(evaluation: Evaluation) -> str:
    plt = _pyplot()
    results = evaluation.results
    names = list(results[0].estimates)
    figure, axis = plt.subplots(figsize=(9, 0.6 + 0.55 * len(results) * 1.2))
    for k, name in enumerate(names):
        offsets = np.arange(len(results)) + (k - (len(names) - 1) / 2) * 0.18
        values = np.array([r.estimates[name].value for r in results])
        lower = np.array([r.estimates[name].lower for r in results])
        upper = np.array([r.estimates[name].upper for r in results])
        error = np.nan_to_num(np.vstack([values - lower, upper - values]))
        axis.errorbar(values, offsets, xerr=error, fmt="o", capsize=3, color=COLOURS[k], label=name.upper())
    axis.set_yticks(range(len(results)), [r.label for r in results])
    axis.invert_yaxis()
    axis.set_xlabel(f"estimated reward per decision ({evaluation.options.confidence:.0%} intervals)")
    axis.legend(loc="best", fontsize=8)
    axis.grid(axis="x", alpha=0.3)
    return _image(figure, "estimated value of each policy with intervals")


def _reward_over_time(examples: Sequence[LoggedExample]) -> str:
    plt = _pyplot()
    rewards = np.array([e.reward for e in examples])
    times = np.array([e.decision.timestamp for e in examples])
    bins = np.array_split(np.arange(len(examples)), min(len(examples), 40))
    middle = [datetime.fromtimestamp(float(times[b].mean()), UTC) for b in bins]
    means = np.array([rewards[b].mean() for b in bins])
    errors = np.array([1.96 * rewards[b].std(ddof=1) / math.sqrt(len(b)) if len(b) > 1 else 0.0 for b in bins])
    figure, axis = plt.subplots(figsize=(9, 3.2))
    axis.plot(middle, means, marker=".", color=COLOURS[0])
    axis.fill_between(middle, means - errors, means + errors, alpha=0.2, color=COLOURS[0])
    axis.set_ylabel("mean reward")
    axis.set_xlabel("decision time (UTC)")
    axis.grid(alpha=0.3)
    figure.autofmt_xdate()
    return _image(figure, "mean reward of logged decisions over time")


def _actions(examples: Sequence[LoggedExample]) -> str:
    plt = _pyplot()
    chosen = Counter(e.decision.chosen for e in examples).most_common(20)
    ids = [action for action, _ in chosen]
    shares = np.array([count for _, count in chosen]) / len(examples)
    figure, axis = plt.subplots(figsize=(9, 0.5 + 0.3 * len(ids)))
    axis.barh(ids, shares, color=COLOURS[0])
    axis.invert_yaxis()
    axis.set_xlabel("share of decisions")
    axis.grid(axis="x", alpha=0.3)
    return _image(figure, "share of decisions per chosen action")


def _propensities(propensities: np.ndarray) -> str:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(9, 3))
    axis.hist(propensities, bins=40, range=(0.0, 1.0), color=COLOURS[0])
    axis.set_xlabel("logged probability of the chosen action")
    axis.set_ylabel("decisions")
    axis.grid(alpha=0.3)
    return _image(figure, "histogram of logged propensities")


def _versions(examples: Sequence[LoggedExample], versions: Sequence[dict[str, Any]]) -> str:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(9, 3.2))
    if versions:
        ordered = sorted(versions, key=lambda v: v["version"])
        axis.step([datetime.fromtimestamp(v["createdAt"], UTC) for v in ordered], [v["version"] for v in ordered],
                  where="post", color=COLOURS[1], label="version created")
    served = [(datetime.fromtimestamp(e.decision.timestamp, UTC), e.decision.policy_version) for e in examples]
    step = max(1, len(served) // 2000)
    axis.plot([t for t, _ in served[::step]], [v for _, v in served[::step]], ".", markersize=2, color=COLOURS[0],
              label="version that served a decision")
    axis.set_ylabel("policy version")
    axis.set_xlabel("time (UTC)")
    axis.legend(loc="upper left", fontsize=8)
    axis.grid(alpha=0.3)
    figure.autofmt_xdate()
    return _image(figure, "policy versions over time")


def loop_report(
    loop: str, examples: Sequence[LoggedExample], evaluation: Evaluation, versions: Sequence[dict[str, Any]] = ()
) -> str:
    """The report of one loop's logged traffic and of how other policies would have done on it."""
    examples = sorted((e for e in examples if e.learnable), key=lambda e: e.decision.timestamp)
    propensities = np.array([e.decision.propensity for e in examples])
    online = evaluation.result("online").estimates["dr"] if any(r.label == "online" for r in evaluation.results) else None
    lead = (
        f"{evaluation.events} decisions with joined rewards from {_when(evaluation.start)} to {_when(evaluation.end)}, "
        f"mean reward {np.mean([e.reward for e in examples]):.4f}"
        + (f" (online policy, DR: {online.value:.4f})" if online else "")
        + "."
    )
    diagnostics = _table(
        ["policy", "events", "effective sample size", "mean weight", "min weight", "max weight", "min propensity", "max propensity"],
        [
            [r.label, r.diagnostics.events, round(r.diagnostics.effective_sample_size, 1), r.diagnostics.mean_weight,
             r.diagnostics.min_weight, r.diagnostics.max_weight, r.diagnostics.min_propensity, r.diagnostics.max_propensity]
            for r in evaluation.results
        ],
        "diagnostics",
    )
    recent = sorted(versions, key=lambda v: v["version"], reverse=True)[:15]
    version_rows = [[v["version"], _when(v["createdAt"]), v["examplesLearned"], v["note"]] for v in recent]
    sections = [
        ("Reward over time", _reward_over_time(examples)),
        ("Estimated value of each policy",
         estimates_table(evaluation) + _forest(evaluation)
         + '<p class="note">IPS and SNIPS rely on the logged propensities only; DM on the reward model only; '
           "DR on either being right. Trust an estimate when its intervals are narrow, the effective sample size "
           "is a good share of the events and the mean weight is near 1.</p>"),
        ("Actions", _actions(examples)),
        ("Propensity diagnostics", _propensities(propensities) + diagnostics),
        ("Policy versions", _versions(examples, versions)
         + (_table(["version", "created", "examples learned", "note"], version_rows, "versions") if version_rows else "")),
    ]
    return _page(f"decide report: loop {loop}", html.escape(lead), sections)


def _curve_plot(results: dict[str, Any], column: str, ylabel: str, alt: str) -> str:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(9, 3.6))
    for k, label in enumerate(results["policies"]):
        rows = [row for row in results["curves"] if row["policy"] == label]
        seeds = sorted({row["seed"] for row in rows})
        rounds = np.array([row["round"] for row in rows if row["seed"] == seeds[0]])
        values = np.array([[row[column] for row in rows if row["seed"] == seed] for seed in seeds])
        colour = COLOURS[k % len(COLOURS)]
        axis.plot(rounds, values.mean(0), color=colour, linestyle=LINES[k % len(LINES)], label=label)
        if len(seeds) > 1:
            axis.fill_between(rounds, values.min(0), values.max(0), color=colour, alpha=0.15)
    axis.set_xlabel("round")
    axis.set_ylabel(ylabel)
    axis.legend(loc="best", fontsize=8)
    axis.grid(alpha=0.3)
    return _image(figure, alt)


def _reward_rate(results: dict[str, Any]) -> str:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(9, 3.2))
    rounds = sorted({row["round"] for row in results["curves"]})
    for k, (label, policy) in enumerate(results["policies"].items()):
        rates = np.array(policy["reward_rate"])
        axis.plot(rounds[: rates.shape[1]], rates.mean(0), color=COLOURS[k % len(COLOURS)], label=label)
    axis.set_xlabel("round")
    axis.set_ylabel("reward (moving mean)")
    axis.legend(loc="best", fontsize=8)
    axis.grid(alpha=0.3)
    return _image(figure, "reward per round over time")


def _simulated_actions(results: dict[str, Any]) -> str:
    plt = _pyplot()
    policies = results["policies"]
    ids = sorted({action for policy in policies.values() for action in policy["actions"]})
    figure, axis = plt.subplots(figsize=(9, 3.2))
    width = 0.8 / len(policies)
    for k, (label, policy) in enumerate(policies.items()):
        total = sum(policy["actions"].values())
        shares = [policy["actions"].get(i, 0) / total for i in ids]
        axis.bar(np.arange(len(ids)) + k * width, shares, width, color=COLOURS[k % len(COLOURS)], label=label)
    axis.set_xticks(np.arange(len(ids)) + 0.4 - width / 2, ids, rotation=30, ha="right")
    axis.set_ylabel("share of decisions")
    axis.legend(loc="best", fontsize=8)
    axis.grid(axis="y", alpha=0.3)
    return _image(figure, "share of decisions per action and policy")


def _simulated_propensities(results: dict[str, Any]) -> str:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(9, 3))
    edges = np.linspace(0.0, 1.0, 21)
    for k, (label, policy) in enumerate(results["policies"].items()):
        counts = np.array(policy["propensities"], dtype=float)
        axis.stairs(counts / counts.sum(), edges, color=COLOURS[k % len(COLOURS)], label=label, linewidth=1.5)
    axis.set_xlabel("probability of the chosen action")
    axis.set_ylabel("share of decisions")
    axis.legend(loc="best", fontsize=8)
    axis.grid(alpha=0.3)
    return _image(figure, "distribution of propensities per policy")


def simulation_report(results: dict[str, Any]) -> str:
    """The report of a simulation, from ``SimulationResult.to_json()``."""
    scenario = results["scenario"]
    summary = results["summary"]
    lead = (
        f"{html.escape(scenario.get('description') or '')} "
        f"Environment {html.escape(scenario['environment']['kind'])}, {summary[0]['rounds']} rounds, "
        f"{len(scenario['seeds'])} seed(s), run {html.escape(results.get('mode', 'in-process'))}."
    )
    best = min(summary, key=lambda row: row["cumulative_regret"])["policy"]
    table = _table(
        ["policy", "mean reward", "cumulative reward", "cumulative regret", "± std. error", "decisions/s", "versions"],
        [
            [row["policy"] + (" (least regret)" if row["policy"] == best else ""), row["mean_reward"], row["cumulative_reward"],
             row["cumulative_regret"], row["regret_std_error"], round(row["decisions_per_second"]), row["versions"]]
            for row in summary
        ],
        "summary",
    )
    sections = [
        ("Summary", table),
        ("Regret", _curve_plot(results, "cumulative_regret", "cumulative regret vs the oracle", "cumulative regret per policy")
         + '<p class="note">Regret is the expected reward the oracle (which knows every action\'s expected reward) '
           "would have earned minus what the policy's choices were expected to earn. Bands span the seeds.</p>"),
        ("Reward over time", _curve_plot(results, "cumulative_reward", "cumulative reward", "cumulative reward per policy")
         + _reward_rate(results)),
    ]
    if "offline" in results:
        sections.append(("Off-policy estimates against the truth", _offline_table(results["offline"])))
    sections += [
        ("Actions", _simulated_actions(results)),
        ("Propensity diagnostics", _simulated_propensities(results)),
        ("Policy versions", _curve_plot(results, "version", "policy version", "policy version over rounds")),
    ]
    return _page(f"decide simulation: {scenario['name']}", lead, sections)


def _offline_table(offline: dict[str, Any]) -> str:
    """Each policy's estimates from another policy's log, marked by whether their intervals cover the truth."""
    names = list(offline["policies"][0]["estimates"])
    replayed = any("replay" in policy for policy in offline["policies"])
    rows = []
    for policy in offline["policies"]:
        cells = [html.escape(policy["policy"]), f"{policy['truth']:.4f}"]
        cells += [_covered(policy["estimates"][name], policy["truth"]) for name in names]
        if replayed:
            run = policy.get("replay")
            cells.append(
                f"{_covered(run, run['online_mean_reward'])} vs {run['online_mean_reward']:.4f} online "
                f"over {run['matched']} rounds" if run else "–"
            )
        rows.append(cells)
    headers = ["policy", "truth", *(name.upper() for name in names), *(["replay"] if replayed else [])]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return (
        f'<p class="note">Estimated from the log of <b>{html.escape(offline["logging"])}</b> ({offline["events"]} decisions). '
        "The truth is the simulator's exact expected reward of each policy's choices on the logged contexts, which is "
        "what the estimators estimate; candidates learn from the logged traffic as they go. ✓ marks an interval that "
        "covers it. Replay (uniform logs only) instead estimates the policy deployed, so it is set against the policy's "
        "own online run.</p>"
        f'<table class="estimates"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    )


def _covered(estimate: dict[str, Any], truth: float) -> str:
    lower, upper = estimate["lower"], estimate["upper"]
    covered = lower is not None and lower <= truth <= upper
    mark = '<span class="good">✓</span>' if covered else '<span class="bad">✗</span>'
    bounds = "[–]" if lower is None else f"[{lower:.4f}, {upper:.4f}]"
    return f"{estimate['value']:.4f} {bounds} {mark}"
