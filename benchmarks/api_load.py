"""Load generator for decide's /rank + /reward, with a bare Flask ceiling measured in the same run.

    python benchmarks/api_load.py                       # 1 round, 20 s per server
    python benchmarks/api_load.py --rounds 3 --duration 30 --json results.json
    python benchmarks/api_load.py --interleave --rounds 10 --duration 8 --warmup 2   # both servers up, taking turns
    python benchmarks/api_load.py --interleave --rounds 6 --versus ../decide-main     # this tree against another checkout

What it does, per round:

1. starts the ceiling (``benchmarks/ceiling_app.py``: bare Flask, same JSON in and
   out, nothing else) under gunicorn, warms it up, measures it, stops it;
2. starts ``python -m decide serve`` on a fresh temporary SQLite database (embedded
   event log, its learner running) with the *same* gunicorn configuration (gthread
   worker class, ``--workers``, ``--threads``), warms it up, measures it, stops it.
   The default loop learns while measured, as it would in production: its reward
   wait is 2 s and it may write a version every second (``--loop-config``), and
   the number of versions written is reported.

The two servers never run at the same time, so neither one's background work (for
decide, the learner catching up) is charged to the other. The load is closed-loop:
``--clients`` processes, each with one keep-alive HTTP/1.1 connection to 127.0.0.1,
send a rank request, and after ~``--reward-fraction`` of the ranks a reward for
that event, then the next rank, as fast as the server answers. Requests have
``--actions`` actions and ``--context-features`` context features in Personalizer
form (namespaces, strings and numbers; each action has its own features), drawn
from a fixed vocabulary with random numbers, pre-encoded so that the clients
spend as little CPU as possible: on a small machine they share the cores with
the server.

Before loading a server the script waits until all its processes are idle
(``/readyz`` answers as soon as one gunicorn worker is up, and load that starts
while another is still importing would pin every keep-alive connection to the
first), and the clients connect 50 ms apart. gunicorn's gthread workers still
share keep-alive connections unevenly; the mean split is reported.

Reported per server: rank p50/p99 latency (ms), sustained requests/s for rank,
reward and both, errors, connections per worker, the server's CPU time per
request (from /proc: every process of the server, learner included; less
sensitive to other load on the machine than throughput), and for decide the
learner's backlog at the end (events appended but not yet consumed: a learner
that falls behind would flatter the API). Then decide/ceiling throughput
ratios. With ``--rounds`` > 1 every number is the median over rounds, and each
round's ratio is computed from the two measurements of that round.

``--versus PATH`` compares two versions of decide instead: the ceiling's place
is taken by ``decide serve`` run from the checkout at PATH (the baseline), and
the ratios are decide/baseline. ``--versus .`` measures this tree against itself,
which shows how large a difference the method can resolve on the machine;
``--decide-env`` changes a setting of this tree's server only.

Only 127.0.0.1 is ever contacted; client count, duration and rounds are bounded.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import queue
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HOST = "127.0.0.1"
MAX_CLIENTS = 64
MAX_DURATION = 600.0
MAX_ROUNDS = 10
LEARNING = '{"rewardWaitTime": 2, "updateInterval": 1}'
"""The default loop's settings while measured: joins close 2 s after their decision and the learner writes a version every second."""
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- requests

VOCABULARY = {
    "country": ["US", "DE", "FR", "IN", "BR", "JP", "GB", "CA", "MX", "ES"],
    "tier": ["free", "silver", "gold", "platinum"],
    "lang": ["en", "de", "fr", "hi", "pt", "ja", "es"],
    "segment": ["new", "casual", "regular", "power", "churn-risk"],
    "device": ["mobile", "desktop", "tablet", "tv"],
    "os": ["android", "ios", "windows", "macos", "linux"],
    "browser": ["chrome", "safari", "firefox", "edge", "app"],
    "weekday": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
    "daypart": ["night", "morning", "afternoon", "evening"],
    "referrer": ["search", "social", "email", "direct", "ads"],
    "weather": ["sunny", "cloudy", "rain", "snow"],
    "topic": ["sports", "politics", "tech", "food", "travel", "music", "finance", "health", "science", "movies"],
    "format": ["article", "video", "gallery", "podcast"],
    "author": [f"author-{i}" for i in range(40)],
}


def context_features(rng: random.Random, count: int) -> list[dict]:
    """``count`` leaf features in three namespaces, about half strings and half numbers."""
    def c(name: str) -> str:
        return rng.choice(VOCABULARY[name])

    user = {
        "country": c("country"), "tier": c("tier"), "lang": c("lang"), "segment": c("segment"),
        "age": rng.randint(18, 80), "tenureDays": rng.randint(0, 3000), "sessions30d": rng.randint(0, 90),
        "spend90d": round(rng.uniform(0, 500), 2),
    }
    device = {"type": c("device"), "os": c("os"), "browser": c("browser"), "screenWidth": rng.choice([360, 414, 768, 1280, 1920])}
    session = {
        "weekday": c("weekday"), "daypart": c("daypart"), "referrer": c("referrer"), "hour": rng.randint(0, 23),
        "pagesViewed": rng.randint(1, 30), "secondsOnSite": round(rng.uniform(0, 1800), 1),
        "cartValue": round(rng.uniform(0, 300), 2), "weather": c("weather"),
    }
    leaves = [("user", k, v) for k, v in user.items()] + [("device", k, v) for k, v in device.items()]
    leaves += [("session", k, v) for k, v in session.items()]
    while len(leaves) < count:  # more than the 20 above: extra numeric signals
        leaves.append(("signals", f"s{len(leaves)}", round(rng.uniform(-1, 1), 4)))
    grouped: dict[str, dict] = {}
    for namespace, key, value in leaves[:count]:
        grouped.setdefault(namespace, {})[key] = value
    return [{namespace: values} for namespace, values in grouped.items()]


def actions(rng: random.Random, count: int) -> list[dict]:
    """``count`` candidate articles from a catalogue of 200, each with 6 features in two objects."""
    chosen = rng.sample(range(200), count)
    return [
        {
            "id": f"article-{i}",
            "features": [
                {"topic": VOCABULARY["topic"][i % 10], "format": VOCABULARY["format"][i % 4], "author": VOCABULARY["author"][i % 40]},
                {"stats": {"lengthWords": 300 + (i * 37) % 2000, "ageHours": round(rng.uniform(0, 72), 1), "ctr7d": round(rng.uniform(0, 0.2), 4)}},
            ],
        }
        for i in chosen
    ]


def rank_body(rng: random.Random, n_actions: int, n_context: int) -> bytes:
    body = {"contextFeatures": context_features(rng, n_context), "actions": actions(rng, n_actions)}
    return json.dumps(body, separators=(",", ":")).encode()


def count_leaves(features) -> int:
    if isinstance(features, list):
        return sum(count_leaves(item) for item in features)
    if isinstance(features, dict):
        return sum(count_leaves(value) if isinstance(value, dict) else 1 for value in features.values())
    return 1


# --------------------------------------------------------------------------- a lean HTTP/1.1 client


class Connection:
    """One keep-alive connection; just enough HTTP/1.1 for JSON bodies with Content-Length.

    ``http.client`` parses headers with the email package, which on a 2-core
    machine would take CPU away from the server being measured.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self.buffer = b""

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((HOST, self.port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.buffer = sock, b""
        return sock

    def post(self, path: bytes, body: bytes) -> tuple[int, bytes]:
        head = b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (path, len(body))
        for attempt in (1, 2):
            sock = self.sock or self._connect()
            try:
                sock.sendall(head + body)
                return self._response(sock)
            except (ConnectionError, EOFError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _response(self, sock: socket.socket) -> tuple[int, bytes]:
        while b"\r\n\r\n" not in self.buffer:
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError("server closed the connection")
            self.buffer += chunk
        header, _, rest = self.buffer.partition(b"\r\n\r\n")
        lines = header.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length, close = None, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        if length is None:
            raise ValueError("response without Content-Length")
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError("server closed the connection mid-body")
            rest += chunk
        body, self.buffer = rest[:length], rest[length:]
        if close:
            self.close()
        return status, body

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock, self.buffer = None, b""


# --------------------------------------------------------------------------- client processes


@dataclass
class ClientResult:
    rank_latencies: list[float] = field(default_factory=list)
    reward_latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    cpu_seconds: float = 0.0


def client_main(index: int, port: int, options: dict, ready, go, window, progress, results) -> None:
    """Closed loop until ``window[1]``; latencies are kept for requests completed inside ``window``."""
    rng = random.Random(options["seed"] * 1000 + index)
    bodies = [rank_body(rng, options["actions"], options["context_features"]) for _ in range(256)]
    connection = Connection(port)
    result = ClientResult()
    started_cpu = sum(os.times()[:2])
    ready.wait()
    go.wait()
    time.sleep(0.05 * index)  # connect one after another, not all in the same instant
    measure_from, measure_until = window[0], window[1]
    ranks = rewards = 0  # all completed, warm-up included (for the progress line)
    i = 0
    try:
        while True:
            body = bodies[i % len(bodies)]
            i += 1
            t0 = time.monotonic()
            if t0 >= measure_until:
                break
            try:
                status, payload = connection.post(b"/rank", body)
                t1 = time.monotonic()
                if status != 201:
                    raise RuntimeError(f"rank answered {status}: {payload[:300]!r}")
                ranks += 1
                if t1 >= measure_from and t1 < measure_until:
                    result.rank_latencies.append(t1 - t0)
                if rng.random() < options["reward_fraction"]:
                    answer = json.loads(payload)
                    value = 1.0 if rng.random() < 0.1 + 0.02 * (zlib.crc32(answer["rewardActionId"].encode()) % 10) else 0.0
                    reward = b'{"eventId":"%s","value":%s}' % (answer["eventId"].encode(), repr(value).encode())
                    t2 = time.monotonic()
                    status, payload = connection.post(b"/reward", reward)
                    t3 = time.monotonic()
                    if status != 202:
                        raise RuntimeError(f"reward answered {status}: {payload[:300]!r}")
                    rewards += 1
                    if t3 >= measure_from and t3 < measure_until:
                        result.reward_latencies.append(t3 - t2)
            except (OSError, ValueError, RuntimeError, KeyError) as error:
                result.errors += 1
                result.first_error = result.first_error or f"{type(error).__name__}: {error}"
                connection.close()
                time.sleep(0.05)
            progress[2 * index] = ranks
            progress[2 * index + 1] = rewards
            if options["reconnect_every"] and i % options["reconnect_every"] == 0:
                connection.close()  # the next rank reconnects, to whichever worker accepts first
    finally:
        connection.close()
        result.cpu_seconds = sum(os.times()[:2]) - started_cpu
        results.put((index, asdict(result)))


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def gunicorn_options(workers: int, threads: int) -> list[str]:
    """What ``decide serve`` passes to gunicorn (see decide/cli/serve.py), minus app and bind."""
    return [
        "--workers", str(workers), "--threads", str(threads), "--worker-class", "gthread", "--graceful-timeout", "10",
    ]


class Server:
    """A server process group started in its own session, so that all of it can be measured and stopped."""

    def __init__(self, name: str, command: list[str], port: int, env: dict[str, str], cwd: Path, log: Path,
                 database: Path | None = None) -> None:
        self.name, self.port, self.database = name, port, database
        self.log_file = open(log, "wb")  # noqa: SIM115 - open while the server runs, closed by stop()
        self.process = subprocess.Popen(command, env=env, cwd=cwd, stdout=self.log_file, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with status {self.process.returncode}; see {self.log_file.name}")
            try:
                with socket.create_connection((HOST, self.port), timeout=2) as sock:
                    sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                    if sock.recv(64).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} was not ready within {timeout:.0f} s; see {self.log_file.name}")

    def wait_quiet(self, timeout: float = 60.0) -> None:
        """Wait until the server's processes are idle: every worker has finished importing and booting.

        /readyz answers as soon as one worker is up; load that starts while another
        is still importing would put every keep-alive connection on the first one.
        """
        deadline = time.monotonic() + timeout
        before = sum(seconds for _, seconds in self.cpu_seconds().values())
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = sum(seconds for _, seconds in self.cpu_seconds().values())
            if now - before < 0.05:
                return
            before = now

    def connections_per_worker(self) -> list[int]:
        """Established connections to the server's port held by each HTTP worker, most first."""
        inodes = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                lines = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == self.port and fields[3] == "01":
                    inodes.add(fields[9])
        http = [pid for pid, (role, _) in self.cpu_seconds().items() if role == "http"]
        counts = []
        for pid in http:
            try:
                parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if parent not in http:  # the gunicorn master, not a worker
                continue
            held = 0
            try:
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    try:
                        target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    except OSError:
                        continue
                    if target.startswith("socket:[") and target[8:-1] in inodes:
                        held += 1
            except OSError:
                continue
            counts.append(held)
        return sorted(counts, reverse=True)

    def cpu_seconds(self) -> dict[int, tuple[str, float]]:
        """pid → (role, user + system CPU seconds so far) of every process in the server's session."""
        times = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                fields = stat[stat.rindex(")") + 2:].split()
                if int(fields[3]) != self.process.pid:  # not in the server's session
                    continue
                command = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except (OSError, ValueError, IndexError):
                continue
            times[int(entry)] = (role_of(command), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
        return times

    def learner_backlog(self) -> int | None:
        """Events appended to decide's embedded log that its learner has not read yet."""
        if self.database is None:
            return None
        try:
            with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=5) as connection:
                (unread,) = connection.execute(  # offsets are row ids on SQLite: count the records past each position
                    'SELECT count(*) FROM event_log e LEFT JOIN consumer_offsets c ON c.stream = e.stream AND c."partition" = e."partition" '
                    'WHERE e."offset" >= coalesce(c.read_offset, c.next_offset, 0)'
                ).fetchone()
            return int(unread)
        except sqlite3.Error:
            return None

    def served_version(self) -> int | None:
        """The default loop's current policy version: how many versions the learner has written so far."""
        if self.database is None:
            return None
        try:
            with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=5) as connection:
                row = connection.execute("SELECT current_version FROM loops WHERE name = 'default'").fetchone()
            return None if row is None else int(row[0])
        except sqlite3.Error:
            return None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        try:  # anything left in the session (a child that outlived its parent)
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.log_file.close()


def role_of(command: str) -> str:
    if "decide worker" in command:
        return "learner"
    if "gunicorn" in command:
        return "http"
    return "other"


def start_ceiling(args, workdir: Path) -> Server:
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "ceiling_app:app", "--bind", f"{HOST}:{port}", *gunicorn_options(args.workers, args.threads)]
    return Server("ceiling", command, port, dict(os.environ), HERE, workdir / "ceiling.log")


def start_target(target: str, args, workdir: Path, round_number: int) -> Server:
    """The ceiling, this tree's decide, or (with ``--versus``) the baseline checkout's decide."""
    if target == "ceiling":
        return start_ceiling(args, workdir)
    if target == "baseline":
        return start_decide(args, workdir, round_number, args.versus, target, {})
    return start_decide(args, workdir, round_number, ROOT, target, dict(args.decide_env))


def start_decide(args, workdir: Path, round_number: int, root: Path, name: str, settings_env: dict[str, str]) -> Server:
    port = free_port()
    database = workdir / f"{name}-{round_number}.db"
    url = f"sqlite:///{database}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("DECIDE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH", "")]))
    env.update(settings_env)
    if json.loads(args.loop_config):
        subprocess.run([sys.executable, "-m", "decide", "migrate", "--database-url", url], env=env, cwd=root, check=True, capture_output=True)
        settings = [f"--set={key}={json.dumps(value)}" for key, value in json.loads(args.loop_config).items()]
        subprocess.run([sys.executable, "-m", "decide", "loops", "configure", "default", *settings, "--database-url", url],
                       env=env, cwd=root, check=True, capture_output=True)
    command = [sys.executable, "-m", "decide", "serve", "--host", HOST, "--port", str(port), "--database-url", url,
               "--workers", str(args.workers), "--threads", str(args.threads)]
    if args.no_learner:
        command.append("--no-learner")
    return Server(name, command, port, env, root, workdir / f"{name}-{round_number}.log", database)


# --------------------------------------------------------------------------- one measurement


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def mean_spread(samples: list[list[int]]) -> str:
    """Mean connections held by the busiest worker, the next one, ... e.g. '5.5+2.5'."""
    if not samples:
        return "?"
    width = max(len(sample) for sample in samples)
    padded = [sample + [0] * (width - len(sample)) for sample in samples]
    return "+".join(f"{statistics.mean(column):.1f}" for column in zip(*padded))


def measure(server: Server, args, label: str) -> dict:
    """Warm up, then measure ``args.duration`` seconds of closed-loop load on a ready server."""
    options = {
        "seed": args.seed, "actions": args.actions, "context_features": args.context_features,
        "reward_fraction": args.reward_fraction, "reconnect_every": args.reconnect_every,
    }
    context = mp.get_context("fork")
    ready = context.Barrier(args.clients + 1)
    go = context.Event()
    window = context.RawArray("d", 2)
    progress = context.RawArray("q", 2 * args.clients)
    results = context.Queue()
    clients = [
        context.Process(target=client_main, args=(i, server.port, options, ready, go, window, progress, results), daemon=True)
        for i in range(args.clients)
    ]
    for client in clients:
        client.start()
    ready.wait()
    start = time.monotonic()
    window[0] = start + args.warmup
    window[1] = window[0] + args.duration
    go.set()
    tty = sys.stderr.isatty()
    cpu_before: dict[int, tuple[str, float]] | None = None
    spreads: list[list[int]] = []
    base = (0, 0)
    last_spread = 0.0
    load_before = os.getloadavg()[0]
    version_before: int | None = None
    last_print = 0.0
    while time.monotonic() < window[1]:
        now = time.monotonic()
        if cpu_before is None and now >= window[0]:
            cpu_before = server.cpu_seconds()
            version_before = server.served_version()
            base = (sum(progress[0::2]), sum(progress[1::2]))
        if now >= window[0] and now - last_spread >= 1.0:
            last_spread = now
            spreads.append(server.connections_per_worker())
        if now - last_print >= (1.0 if tty else 5.0):
            last_print = now
            phase = "warm-up" if now < window[0] else "measure"
            elapsed = now - window[0] if now >= window[0] else now - start
            total = args.duration if now >= window[0] else args.warmup
            ranks, rewards = sum(progress[0::2]), sum(progress[1::2])
            if phase == "measure":
                ranks, rewards = ranks - base[0], rewards - base[1]
            rate = ranks / elapsed if elapsed > 0 else 0.0
            line = f"  {label:<10} {phase:<8} {elapsed:5.1f}/{total:.0f} s  ranks {ranks:7d}  rewards {rewards:7d}  rank/s {rate:7.1f}"
            print(("\r" + line) if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)
        time.sleep(min(0.25, max(0.0, window[1] - time.monotonic())))
    cpu_after = server.cpu_seconds()
    backlog = server.learner_backlog()
    version_after = server.served_version()
    if cpu_before is None:
        cpu_before = {}
    if tty:
        print(file=sys.stderr)
    collected: dict[int, dict] = {}
    deadline = time.monotonic() + 60
    while len(collected) < len(clients) and time.monotonic() < deadline:
        try:
            index, result = results.get(timeout=max(0.1, deadline - time.monotonic()))
            collected[index] = result
        except queue.Empty:
            break
    for client in clients:
        client.join(timeout=5)
        if client.is_alive():
            client.kill()
    if len(collected) < len(clients):
        raise RuntimeError(f"only {len(collected)} of {len(clients)} clients reported")
    rank_latencies = [x for r in collected.values() for x in r["rank_latencies"]]
    reward_latencies = [x for r in collected.values() for x in r["reward_latencies"]]
    errors = sum(r["errors"] for r in collected.values())
    first_error = next((r["first_error"] for r in collected.values() if r["first_error"]), "")
    by_role: dict[str, float] = {}
    for pid, (role, seconds) in cpu_after.items():
        by_role[role] = by_role.get(role, 0.0) + seconds - cpu_before.get(pid, (role, 0.0))[1]
    server_cpu = sum(by_role.values())
    requests = len(rank_latencies) + len(reward_latencies)
    return {
        "rank_p50_ms": 1000 * percentile(rank_latencies, 50),
        "rank_p99_ms": 1000 * percentile(rank_latencies, 99),
        "reward_p50_ms": 1000 * percentile(reward_latencies, 50),
        "reward_p99_ms": 1000 * percentile(reward_latencies, 99),
        "rank_per_s": len(rank_latencies) / args.duration,
        "reward_per_s": len(reward_latencies) / args.duration,
        "total_per_s": requests / args.duration,
        "errors": errors,
        "first_error": first_error,
        "server_cpu_ms_per_request": 1000 * server_cpu / requests if requests else float("nan"),
        "server_cpu_cores": server_cpu / args.duration,
        "http_cpu_cores": by_role.get("http", 0.0) / args.duration,
        "learner_cpu_cores": by_role.get("learner", 0.0) / args.duration,
        "client_cpu_cores": sum(r["cpu_seconds"] for r in collected.values()) / (args.warmup + args.duration),
        "connections_per_worker": mean_spread(spreads),
        "learner_backlog": backlog,
        "versions_written": None if version_before is None or version_after is None else version_after - version_before,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
    }


# --------------------------------------------------------------------------- report


METRICS = [
    ("rank p50 (ms)", "rank_p50_ms", "{:.2f}"),
    ("rank p99 (ms)", "rank_p99_ms", "{:.2f}"),
    ("reward p50 (ms)", "reward_p50_ms", "{:.2f}"),
    ("reward p99 (ms)", "reward_p99_ms", "{:.2f}"),
    ("rank req/s", "rank_per_s", "{:.0f}"),
    ("reward req/s", "reward_per_s", "{:.0f}"),
    ("total req/s", "total_per_s", "{:.0f}"),
    ("server CPU ms/request", "server_cpu_ms_per_request", "{:.2f}"),
    ("server CPU (cores)", "server_cpu_cores", "{:.2f}"),
    ("  of which HTTP workers", "http_cpu_cores", "{:.2f}"),
    ("  of which learner", "learner_cpu_cores", "{:.2f}"),
    ("client CPU (cores)", "client_cpu_cores", "{:.2f}"),
    ("errors", "errors", "{:.0f}"),
]
RATIOS = [("rank req/s", "rank_per_s"), ("total req/s", "total_per_s")]


def median_of(rounds: list[dict], target: str, key: str) -> float:
    return statistics.median(r[target][key] for r in rounds)


def report(rounds: list[dict], args) -> dict:
    reference = reference_of(args)
    summary = {target: {key: median_of(rounds, target, key) for _, key, _ in METRICS} for target in ("decide", reference)}
    ratios = {key: statistics.median(r["decide"][key] / r[reference][key] for r in rounds) for _, key in RATIOS}
    what = f"median of {len(rounds)} rounds" if len(rounds) > 1 else "1 round"
    print(f"\nAPI benchmark: {args.actions} actions, {args.context_features} context features, {args.reward_fraction:.0%} rewarded, "
          f"{args.clients} clients, {args.duration:.0f} s measured after {args.warmup:.0f} s warm-up ({what})")
    print(f"gunicorn: gthread, {args.workers} workers x {args.threads} threads; machine: {machine()}")
    if args.versus:
        print(f"baseline: decide from {args.versus}; decide: this tree" + (f" with {dict(args.decide_env)}" if args.decide_env else ""))
    print(f"{'':<24}{'decide':>12}{reference:>12}")
    for label, key, fmt in METRICS:
        print(f"{label:<24}{fmt.format(summary['decide'][key]):>12}{fmt.format(summary[reference][key]):>12}")
    for label, key in RATIOS:
        per_round = ", ".join(f"{r['decide'][key] / r[reference][key]:.2f}" for r in rounds)
        print(f"ratio decide/{reference}, {label}: {ratios[key]:.2f}" + (f"  (rounds: {per_round})" if len(rounds) > 1 else ""))
    written = [r["decide"]["versions_written"] for r in rounds]
    print(f"decide's policy versions written while measured: {', '.join('?' if w is None else str(w) for w in written)} (loop settings {args.loop_config})")
    for r in rounds:
        for target in ("decide", reference):
            if r[target]["errors"]:
                print(f"warning: {target} had {r[target]['errors']} errors in round {r['round']}; first: {r[target]['first_error']}")
    return {"summary": summary, "ratios": ratios}


def reference_of(args) -> str:
    """What decide is measured against: the ceiling, or with ``--versus`` another checkout's decide."""
    return "baseline" if args.versus else "ceiling"


def environment_setting(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name.startswith("DECIDE_"):
        raise argparse.ArgumentTypeError(f"expected DECIDE_NAME=VALUE, got {text!r}")
    return name, value


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs, {model}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds measured per server and round (default 20)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of load before measuring (default 5)")
    parser.add_argument("--rounds", type=int, default=1, help="ceiling + decide measurements to take the median of (default 1)")
    parser.add_argument("--clients", type=int, default=8, help="client processes, one keep-alive connection each (default 8)")
    parser.add_argument("--reconnect-every", type=int, default=0, metavar="N",
                        help="open a new connection after every N ranks (default 0: never). With keep-alive "
                             "connections that never close, gunicorn's workers can end up with very uneven shares")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers, for both servers (default 2, decide serve's default)")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker, for both servers (default 4)")
    parser.add_argument("--actions", type=int, default=10, help="actions per rank request (default 10)")
    parser.add_argument("--context-features", type=int, default=20, help="context features per rank request (default 20)")
    parser.add_argument("--reward-fraction", type=float, default=0.5, help="fraction of ranks followed by a reward (default 0.5)")
    parser.add_argument("--loop-config", default=LEARNING, help=f"JSON settings for the default loop (default: {LEARNING}, so that rewards "
                        "join and versions advance while measured, as in production; '{}' keeps the loop's defaults, whose 600 s reward wait "
                        "learns nothing in a short run)")
    parser.add_argument("--no-learner", action="store_true", help="diagnosis only: serve decide without its learner process")
    parser.add_argument("--only", choices=["decide", "ceiling"], help="measure one server only (no ratio)")
    parser.add_argument("--interleave", action="store_true",
                        help="start both servers once and let the rounds take turns (ceiling, decide, then decide, ceiling, ...), "
                             "instead of a fresh pair of servers per round: steadier ratios on a machine whose speed drifts")
    parser.add_argument("--versus", type=Path, metavar="PATH",
                        help="measure decide against decide served from the checkout at PATH instead of the ceiling "
                             "('.': this tree against itself, the method's noise band)")
    parser.add_argument("--decide-env", type=environment_setting, action="append", default=[], metavar="DECIDE_NAME=VALUE",
                        help="a setting for this tree's decide only (repeatable), e.g. DECIDE_JOIN_SPILL_AFTER=3600")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write every round's numbers and the summary here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (databases, server logs)")
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= MAX_CLIENTS:
        parser.error(f"--clients must be from 1 to {MAX_CLIENTS}")
    if not 1.0 <= args.duration <= MAX_DURATION or not 0.0 <= args.warmup <= 120.0:
        parser.error(f"--duration must be from 1 to {MAX_DURATION:.0f} s and --warmup from 0 to 120 s")
    if not 1 <= args.rounds <= MAX_ROUNDS:
        parser.error(f"--rounds must be from 1 to {MAX_ROUNDS}")
    if not (1 <= args.workers <= 16 and 1 <= args.threads <= 64):
        parser.error("--workers must be from 1 to 16 and --threads from 1 to 64")
    if not (1 <= args.actions <= 50 and 0 <= args.context_features <= 200 and 0.0 <= args.reward_fraction <= 1.0):
        parser.error("--actions 1..50, --context-features 0..200, --reward-fraction 0..1")
    try:
        if not isinstance(json.loads(args.loop_config), dict):
            raise ValueError("not an object")
    except ValueError as error:
        parser.error(f"--loop-config must be a JSON object of loop settings: {error}")
    if args.versus is not None:
        args.versus = args.versus.resolve()
        if not (args.versus / "decide" / "__init__.py").is_file():
            parser.error(f"--versus {args.versus}: not a checkout of decide (no decide/__init__.py)")
        if args.only:
            parser.error("--versus compares two servers; leave out --only")
    return args


def measure_target(server: Server, target: str, number: int, args) -> dict:
    """Wait until ``server`` is idle, measure it, and say what was measured."""
    server.wait_quiet()
    m = measure(server, args, f"{target}" + (f" r{number}" if args.rounds > 1 else ""))
    print(f"  {target}: rank {m['rank_per_s']:.0f}/s, reward {m['reward_per_s']:.0f}/s, rank p50 {m['rank_p50_ms']:.1f} ms, "
          f"p99 {m['rank_p99_ms']:.1f} ms, server CPU {m['server_cpu_ms_per_request']:.2f} ms/request, "
          f"connections per worker {m['connections_per_worker']}, errors {m['errors']}"
          + (f", learner backlog {m['learner_backlog']} events" if m["learner_backlog"] is not None else "")
          + (f", {m['versions_written']} policy versions written while measured" if m["versions_written"] is not None else ""),
          file=sys.stderr)
    return m


def interleaved_rounds(args, targets: list[str], workdir: Path) -> list[dict]:
    """Both servers stay up; the rounds take turns (ceiling, decide, then decide, ceiling, ...).

    Only one server has load at a time, and each measurement starts once the other
    is idle (decide's learner caught up). A drift in the machine's speed, which on
    a shared virtual machine can reach ±25 % within minutes, then shifts the two
    measurements of a round alike.
    """
    servers = {target: start_target(target, args, workdir, 1) for target in targets}
    try:
        for server in servers.values():
            server.wait_ready()
        rounds = []
        for number in range(1, args.rounds + 1):
            order = targets if number % 2 else targets[::-1]
            measured: dict = {"round": number}
            for target in order:
                for other in servers.values():
                    other.wait_quiet()
                measured[target] = measure_target(servers[target], target, number, args)
            rounds.append(measured)
        return rounds
    finally:
        for server in servers.values():
            server.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sample = json.loads(rank_body(random.Random(args.seed), args.actions, args.context_features))
    assert count_leaves(sample["contextFeatures"]) == args.context_features and len(sample["actions"]) == args.actions
    workdir = Path(tempfile.mkdtemp(prefix="decide-bench-"))
    targets = [args.only] if args.only else [reference_of(args), "decide"]
    print(f"API benchmark in {workdir}: {', '.join(targets)}; gthread {args.workers}x{args.threads}, {args.clients} clients, "
          f"{args.warmup:.0f}+{args.duration:.0f} s each, {args.rounds} round(s); {machine()}", file=sys.stderr)
    rounds: list[dict] = []
    try:
        if args.interleave:
            rounds = interleaved_rounds(args, targets, workdir)
        else:
            for number in range(1, args.rounds + 1):
                measured: dict = {"round": number}
                for target in targets:
                    server = start_target(target, args, workdir, number)
                    try:
                        server.wait_ready()
                        measured[target] = measure_target(server, target, number, args)
                    finally:
                        server.stop()
                rounds.append(measured)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.only:
        for label, key, fmt in METRICS:
            print(f"{label:<24}{fmt.format(statistics.median(r[args.only][key] for r in rounds)):>12}")
        summary = {}
    else:
        summary = report(rounds, args)
    if args.json:
        args.json.write_text(json.dumps({"arguments": {k: str(v) for k, v in vars(args).items()}, "machine": machine(), "rounds": rounds, **summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
