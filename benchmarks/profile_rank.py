"""Where a /rank (and /reward) spends its CPU, in-process, under cProfile.

    python benchmarks/profile_rank.py                       # 3000 ranks, ~50% rewarded
    python benchmarks/profile_rank.py --sort tottime --top 50

The requests are those of ``benchmarks/api_load.py`` (10 actions, 20 context
features by default). The app runs on a temporary SQLite database with the
embedded log, called as a WSGI application with a prepared environ, the way
gunicorn calls it, so neither an HTTP server nor a test client adds its own
cost; there is no learner and no lock contention. It prints:

* CPU time per rank and per reward, the same for the bare Flask ceiling app of
  ``benchmarks/ceiling_app.py``, and their ratio (what decide's own code costs);
* CPU time per call of each stage of a rank, measured separately;
* the cProfile listing of decide's rank + reward path.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as decide serve runs its workers; numpy is imported later
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from api_load import rank_body


def environ(path: str, body: bytes) -> dict:
    return {
        "REQUEST_METHOD": "POST", "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8080", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:8080",
        "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": True,
        "wsgi.run_once": False, "wsgi.version": (1, 0),
    }


def call(app, path: str, body: bytes) -> tuple[int, bytes]:
    status: list[str] = []
    chunks = app(environ(path, body), lambda s, headers, exc_info=None: status.append(s))
    try:
        data = b"".join(chunks)
    finally:
        getattr(chunks, "close", lambda: None)()
    return int(status[0].split()[0]), data


def driver(app, bodies: list[bytes]):
    def run(n: int) -> None:
        for i in range(n):
            code, data = call(app, "/rank", bodies[i % len(bodies)])
            assert code == 201, data
            if i % 2 == 0:
                event_id = json.loads(data)["eventId"]
                code, data = call(app, "/reward", b'{"eventId":"%s","value":1.0}' % event_id.encode())
                assert code == 202, data
    return run


def cpu_per_request(run, n: int) -> float:
    """CPU ms per request (ranks and rewards together, 1.5 requests per rank)."""
    started = time.process_time()
    run(n)
    return 1000 * (time.process_time() - started) / (1.5 * n)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="ranks per measurement (default 3000)")
    parser.add_argument("--actions", type=int, default=10)
    parser.add_argument("--context-features", type=int, default=20)
    parser.add_argument("--sort", default="cumulative")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--loop-config", default="", help="JSON settings for the default loop")
    args = parser.parse_args()

    import numpy as np
    from ceiling_app import app as ceiling

    from decide.api import create_app
    from decide.api.context import parse_body
    from decide.api.decider import decision_rng
    from decide.api.bodies import RankRequest
    from decide.cli.database import prepare
    from decide.config import Settings
    from decide.events.schemas import Decision, encode
    from decide.store import queries
    from decide.store.db import make_engine, writer_sessions

    directory = tempfile.mkdtemp(prefix="decide-profile-")
    settings = Settings.from_env(database_url=f"sqlite:///{directory}/profile.db")
    prepare(settings)
    engine = make_engine(settings.database_url)
    if args.loop_config:
        with writer_sessions(engine).begin() as session:
            queries.configure(session, settings.default_loop, json.loads(args.loop_config))
    app = create_app(settings, engine=engine)
    rng = random.Random(0)
    bodies = [rank_body(rng, args.actions, args.context_features) for _ in range(256)]
    run_decide, run_ceiling = driver(app, bodies), driver(ceiling, bodies)
    run_decide(300)  # warm caches: policy snapshot, feature hashes, SQL statement cache
    run_ceiling(300)

    # Alternated, so that a change in the machine's other load shifts both alike.
    measured = [(cpu_per_request(run_decide, args.requests), cpu_per_request(run_ceiling, args.requests)) for _ in range(3)]
    decide_ms, ceiling_ms = (min(column) for column in zip(*measured, strict=True))
    print(f"load average {os.getloadavg()[0]:.2f}")
    print(f"CPU per request (rank + 50% reward, best of 3 x {args.requests} ranks, alternated, no HTTP server, no learner):")
    print(f"  decide   {decide_ms:6.3f} ms")
    print(f"  ceiling  {ceiling_ms:6.3f} ms")
    print(f"  ceiling/decide = {ceiling_ms / decide_ms:.2f} (the throughput ratio if both were CPU-bound here)\n")

    decider = app.extensions["decide"].decider
    generator = np.random.Generator(np.random.PCG64())  # each request thread reuses one, as Decider.rank does
    served = decider.policies.get(settings.default_loop)
    requests = [parse_body(RankRequest, body) for body in bodies]
    sets = [served.space.action_set(r.contextFeatures, r.actions) for r in requests]
    event = Decision(
        event_id="x" * 32, loop="default", timestamp=0.0, policy_version=1, context=requests[0].contextFeatures,
        actions=requests[0].actions, excluded=[], chosen="a",
        probabilities=[0.1] * 10,
    )
    text = encode(event)

    def per_call(fn, n: int = 500) -> float:
        started = time.process_time()
        for i in range(n):
            fn(i)
        return 1000 * (time.process_time() - started) / n

    stages = {
        "whole rank, through WSGI": lambda i: call(app, "/rank", bodies[i % 256]),
        "whole rank, ceiling app": lambda i: call(ceiling, "/rank", bodies[i % 256]),
        "parse + validate (orjson, pydantic)": lambda i: parse_body(RankRequest, bodies[i % 256]),
        "featurize (FeatureSpace.action_set)": lambda i: served.space.action_set(requests[i % 256].contextFeatures, requests[i % 256].actions),
        "decision_rng": lambda i: decision_rng(str(i), 1, generator),
        "policy probabilities (with decision_rng)": lambda i: served.policy.probabilities(
            served.snapshot, sets[i % 256], decision_rng(str(i), 1, generator)),
        "encode the decision event (json)": lambda i: encode(event),
        "event log append (one transaction)": lambda i: decider.log.append("decisions", f"bench-{i}", text),
        "reward's joined-event check (SELECT)": lambda i: decider.reads.closed(f"bench-{i}"),
    }
    print("CPU ms per call, each stage alone (best of 5 interleaved passes of 500 calls):")
    # Each stage's best of 5 passes, the passes interleaved across stages: the machine's speed drifts.
    best = {name: per_call(fn) for name, fn in stages.items()}
    for _ in range(4):
        for name, fn in stages.items():
            best[name] = min(best[name], per_call(fn))
    for name, milliseconds in best.items():
        print(f"  {name:<40} {milliseconds:7.3f}")

    profiler = cProfile.Profile()
    profiler.enable()
    run_decide(args.requests)
    profiler.disable()
    print(f"\ncProfile of {args.requests} ranks + {args.requests // 2} rewards:")
    pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
