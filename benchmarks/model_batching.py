"""Adaptive batching versus batch size 1 for a vectorized numpy model, measured through real backends.

    python benchmarks/model_batching.py [--seconds 6] [--objective-ms 100] [--hidden 2048] [--max-batch 512]

Two backend processes serve the same model (an MLP, 32 → 2048 → 2048 → 1 by default,
float32, numpy with one BLAS thread): one adapts its batch size (AIMD, up to
512), the other computes one request at a time. An open-loop generator sends
requests at a fixed rate, each with the objective as its deadline, through the
same client the API uses, and times every answer from the moment its request
was sent, as an API worker would; how late the generator itself sent against
its schedule is reported beside it. It measures:

1. each backend's capacity: its answered rate with more requests always in flight than it can batch;
2. both at 80% of the adaptive capacity, a load batch size 1 cannot sustain:
   answered rate, p50/p99 latency of answers, and the share of requests answered
   within the objective (unanswered requests count as outside it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from decide.serving.backend import spawn  # noqa: E402
from decide.serving.client import Backends, Call  # noqa: E402
from decide.serving.protocol import socket_path  # noqa: E402
from decide.serving.spec import ModelSpec  # noqa: E402

INPUTS = 32


class Mlp:
    """A small dense network: the cost of a call is mostly moving its weights, so batching pays."""

    def __init__(self, hidden: int = int(os.environ.get("DECIDE_BENCH_HIDDEN", "2048")), seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.layers = [
            rng.normal(0, 1 / np.sqrt(INPUTS), (INPUTS, hidden)).astype(np.float32),
            rng.normal(0, 1 / np.sqrt(hidden), (hidden, hidden)).astype(np.float32),
        ]
        self.out = rng.normal(0, 1 / np.sqrt(hidden), (hidden, 1)).astype(np.float32)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        hidden = batch.astype(np.float32)
        for weights in self.layers:
            hidden = np.maximum(hidden @ weights, 0.0)
        return np.tanh(hidden @ self.out)[:, 0]


mlp = Mlp()


@dataclass
class Result:
    offered: float
    seconds: float
    sent: int
    answered: int
    within: int
    rejected: int
    latencies: np.ndarray
    batch_sizes: np.ndarray
    compute_per_row: float = float("nan")
    """Mean compute seconds per input, as the backend measured its batches."""
    sender_lag: float = 0.0
    """p99 of how late the generator sent requests against its schedule (its own share of the machine)."""
    backend_cpu: float = float("nan")
    """CPU seconds the backend process used during the measured window."""

    @property
    def per_cpu_second(self) -> float:
        return self.answered / self.backend_cpu if self.backend_cpu else float("nan")

    @property
    def throughput(self) -> float:
        return self.answered / self.seconds

    def quantile(self, q: float) -> float:
        return float(np.quantile(self.latencies, q)) if len(self.latencies) else float("nan")

    @property
    def share_within(self) -> float:
        return self.within / self.sent if self.sent else 0.0


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used (user + system), from /proc: steadier than wall time on a shared machine."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def offer(backends: Backends, model: str, pid: int, rate: float, seconds: float, objective: float, warmup: float = 1.0) -> Result:
    """Send ``rate`` requests per second for ``warmup + seconds``; measure those sent after the warm-up."""
    row = np.random.default_rng(1).normal(size=INPUTS).round(4).tolist()
    message = {"x": row, "b": objective}
    lock = threading.Lock()
    done: list[tuple[float, float, float, int]] = []
    rejected = 0
    start = time.perf_counter()
    measured_from = start + warmup
    total = int(rate * (warmup + seconds))
    sent_measured = 0
    lags: list[float] = []

    def answered(call: Call, scheduled: float, sent: float) -> None:
        nonlocal rejected
        now = time.perf_counter()
        reply = call.reply or {}
        with lock:
            if "y" in reply:
                done.append((scheduled, now, now - sent, reply["n"], reply["c"] / reply["n"]))
            elif reply.get("e") == "rejected" and scheduled >= measured_from:
                rejected += 1

    cpu_at_start: float | None = None
    for index in range(total):
        scheduled = start + index / rate
        if cpu_at_start is None and scheduled >= measured_from:
            cpu_at_start = cpu_seconds(pid)
        delay = scheduled - time.perf_counter()
        if delay > 0.0005:
            time.sleep(delay)
        sent = time.perf_counter()
        if scheduled >= measured_from:
            sent_measured += 1
            lags.append(sent - scheduled)
        backends.call(model, 1, message, objective, callback=lambda call, scheduled=scheduled, sent=sent: answered(call, scheduled, sent))
    finished = time.perf_counter()
    cpu = cpu_seconds(pid) - (cpu_at_start or 0.0)
    time.sleep(objective * 3)
    with lock:
        measured = [(latency, size, per_row) for scheduled, _, latency, size, per_row in done if scheduled >= measured_from]
        # Answers per second of wall time, so that a sender falling behind its schedule cannot inflate the rate.
        in_window = sum(measured_from <= completed <= finished for _, completed, _, _, _ in done)
    latencies = np.array([latency for latency, _, _ in measured])
    return Result(
        offered=rate,
        seconds=finished - measured_from,
        sent=sent_measured,
        answered=in_window,
        within=int((latencies <= objective).sum()) if len(latencies) else 0,
        rejected=rejected,
        latencies=latencies,
        batch_sizes=np.array([size for _, size, _ in measured]),
        compute_per_row=float(np.mean([per_row for _, _, per_row in measured])) if measured else float("nan"),
        sender_lag=float(np.quantile(lags, 0.99)) if lags else 0.0,
        backend_cpu=cpu,
    )


def capacity(backends: Backends, model: str, pid: int, seconds: float, window: int) -> Result:
    """Answers per second with ``window`` requests always in flight: the backend never waits for work.

    Closed-loop, so the measurement is not limited by how fast one Python process
    can send on a schedule; deadlines are generous, since this measures throughput only.
    """
    message = {"x": np.random.default_rng(1).normal(size=INPUTS).round(4).tolist(), "b": 60.0}
    completed: list[tuple[float, int, float]] = []
    stop = threading.Event()

    def again(call: Call | None) -> None:
        if call is not None and call.reply and "y" in call.reply:
            completed.append((time.perf_counter(), call.reply["n"], call.reply["c"] / call.reply["n"]))
        if not stop.is_set():
            backends.call(model, 1, message, message["b"], callback=again)

    for _ in range(window):
        again(None)
    time.sleep(1.0)
    cpu_at_start = cpu_seconds(pid)
    time.sleep(seconds)
    cpu = cpu_seconds(pid) - cpu_at_start
    stop.set()
    time.sleep(0.5)
    ended = completed[-1][0]
    window = [(size, per_row) for moment, size, per_row in completed if ended - seconds <= moment]
    sizes = np.array([size for size, _ in window])
    per_row = float(np.mean([per_row for _, per_row in window]))
    return Result(float("nan"), seconds, len(sizes), len(sizes), 0, 0, np.array([]), sizes, compute_per_row=per_row, backend_cpu=cpu)


def start(directory: str, name: str, spec: ModelSpec, hidden: int):
    path = socket_path(directory, name, 0)
    environment = os.environ | {
        "PYTHONPATH": str(ROOT), "DECIDE_BENCH_HIDDEN": str(hidden), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
    }
    process = spawn(name, 1, spec, path, environment)
    deadline = time.monotonic() + 60
    while not os.path.exists(path):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"backend {name} did not start")
        time.sleep(0.05)
    return process


def row(label: str, result: Result) -> str:
    batch = f"{np.mean(result.batch_sizes):.1f} | {result.compute_per_row * 1e6:,.0f} | {result.per_cpu_second:,.0f}"
    if np.isnan(result.offered):
        return f"| {label} | closed loop | {result.throughput:,.0f} | | | | | {batch} | |"
    return (
        f"| {label} | {result.offered:,.0f} | {result.throughput:,.0f} | {result.quantile(0.5) * 1000:.1f} | "
        f"{result.quantile(0.99) * 1000:.1f} | {100 * result.share_within:.2f}% | {result.rejected:,} | {batch} | "
        f"{result.sender_lag * 1000:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="Measured seconds per run (after 1 s of warm-up).")
    parser.add_argument("--objective-ms", type=float, default=100.0)
    parser.add_argument("--max-batch", type=int, default=512)
    parser.add_argument("--hidden", type=int, default=2048, help="Width of the MLP's hidden layers.")
    args = parser.parse_args()
    objective = args.objective_ms / 1000.0
    directory = tempfile.mkdtemp(prefix="dcd-bench-")
    common = {"target": "benchmarks.model_batching:mlp", "inputs": [f"x{i}" for i in range(INPUTS)], "latencyObjectiveMs": args.objective_ms, "queueLimit": 4096}
    processes = [
        start(directory, "adaptive", ModelSpec(**common, maxBatchSize=args.max_batch, maxWaitMs=2.0), args.hidden),
        start(directory, "single", ModelSpec(**common, maxBatchSize=1, maxWaitMs=0.0), args.hidden),
    ]
    backends = Backends(directory)
    try:
        adaptive_pid, single_pid = (process.pid for process in processes)
        adaptive_capacity = capacity(backends, "adaptive", adaptive_pid, args.seconds, window=2 * args.max_batch)
        load = 0.8 * adaptive_capacity.throughput
        adaptive = offer(backends, "adaptive", adaptive_pid, load, args.seconds, objective)
        single_capacity = capacity(backends, "single", single_pid, args.seconds, window=32)
        single = offer(backends, "single", single_pid, load, args.seconds, objective)
    finally:
        backends.close()
        for process in processes:
            process.terminate()
            process.wait()
        shutil.rmtree(directory, ignore_errors=True)
    print(
        f"MLP {INPUTS} → {args.hidden} → {args.hidden} → 1; objective {args.objective_ms:g} ms; {args.seconds:g} s measured per run; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end"
    )
    print(
        "| run | offered req/s | answered req/s | p50 ms | p99 ms | within objective | rejected | mean batch "
        "| compute µs/input | answered per backend CPU-second | sender lag p99 ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(row("capacity, batch size 1", single_capacity))
    print(row("capacity, adaptive", adaptive_capacity))
    print(row("80% of adaptive capacity, batch size 1", single))
    print(row("80% of adaptive capacity, adaptive", adaptive))
    print(
        f"\nadaptive / batch size 1 at the same load: {adaptive.throughput / single.throughput:.1f}x the throughput; "
        f"capacity ratio {adaptive_capacity.throughput / single_capacity.throughput:.1f}x "
        f"({adaptive_capacity.per_cpu_second / single_capacity.per_cpu_second:.1f}x per backend CPU-second); "
        f"adaptive p99 {adaptive.quantile(0.99) * 1000:.1f} ms (objective {args.objective_ms:g} ms); "
        f"{100 * adaptive.share_within:.2f}% within the objective at 80% of capacity"
    )


if __name__ == "__main__":
    main()
