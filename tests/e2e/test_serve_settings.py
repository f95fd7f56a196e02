"""Settings only ``decide serve`` and the client commands read, on a real ``decide serve``; and ``decide demo`` against one.

Each fails when decide ignores the setting: docs/settings-coverage.md lists the
mutation it was checked against.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from decide.client import ApiError, Client
from tests.e2e.conftest import free_port, stop, wait_ready

CONTEXT = [{"user": {"tier": "gold"}}]
ACTIONS = [{"id": "a"}, {"id": "b"}]


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def command_line(pid: int) -> list[str]:
    return (Path("/proc") / str(pid) / "cmdline").read_bytes().decode().split("\0")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")
def test_serve_listens_where_told_with_the_workers_threads_keys_and_access_log_it_was_given(tmp_path):
    """DECIDE_HOST, DECIDE_PORT, DECIDE_WORKERS, DECIDE_THREADS, DECIDE_ACCESS_LOG and DECIDE_API_KEYS; DECIDE_API_KEY for ``decide simulate --url``."""
    host, port = "127.0.0.2", free_port()
    environment = os.environ | {
        "DECIDE_DATABASE_URL": f"sqlite:///{tmp_path / 'decide.db'}", "DECIDE_HOST": host, "DECIDE_PORT": str(port),
        "DECIDE_WORKERS": "3", "DECIDE_THREADS": "2", "DECIDE_ACCESS_LOG": "yes", "DECIDE_API_KEYS": "k1,k2",
    }
    log = tmp_path / "serve.log"
    with log.open("w") as output:
        server = subprocess.Popen([sys.executable, "-m", "decide", "serve", "--no-backends"], env=environment,
                                  stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    client = Client(f"http://{host}:{port}", api_key="k1")
    try:
        wait_ready(client, server)
        assert client.rank(CONTEXT, ACTIONS)["rewardActionId"] in ("a", "b")
        keyless = Client(f"http://{host}:{port}")
        with pytest.raises(ApiError) as refused:
            keyless.rank(CONTEXT, ACTIONS)
        keyless.close()
        assert refused.value.status == 401
        with pytest.raises(OSError):
            Client(f"http://127.0.0.1:{port}", timeout=2).request("GET", "/healthz")

        (gunicorn,) = [pid for pid in children(server.pid) if "gunicorn" in command_line(pid)]
        arguments = command_line(gunicorn)
        assert arguments[arguments.index("--threads") + 1] == "2"
        deadline = time.monotonic() + 30
        while len(children(gunicorn)) != 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(children(gunicorn)) == 3, "gunicorn worker processes"

        simulated = subprocess.run(
            [sys.executable, "-m", "decide", "simulate", "linear-contextual", "--url", f"http://{host}:{port}", "--rounds", "20",
             "--seeds", "0", "--policy", "uniform", "--no-report", "--no-progress", "--out", str(tmp_path / "simulation")],
            env=os.environ | {"DECIDE_API_KEY": "k2"}, capture_output=True, text=True, timeout=120,
        )
        assert simulated.returncode == 0, simulated.stdout[-2000:] + simulated.stderr[-2000:]

        deadline = time.monotonic() + 10
        while '"POST /rank HTTP/1.1" 201' not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert '"POST /rank HTTP/1.1" 201' in log.read_text(), log.read_text()[-2000:]
    finally:
        client.close()
        stop(server)


def demo(url: str, rounds: int, every: int) -> tuple[str, list[list[float]]]:
    """Run ``decide demo`` at DECIDE_URL: its output, and its table's rows (rounds, reward rate, random choice, best possible, version)."""
    done = subprocess.run(
        [sys.executable, "-m", "decide", "demo", "--rounds", str(rounds), "--report-every", str(every)],
        env=os.environ | {"DECIDE_URL": url}, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = [[float(value) for value in line.split()] for line in done.stdout.splitlines() if re.fullmatch(r"\s*\d+(\s+[\d.]+){4}", line)]
    assert [row[0] for row in rows] == list(range(every, rounds + 1, every)), done.stdout
    assert "overall reward rate" in done.stdout
    return done.stdout, rows


def test_demo_learns_to_beat_random_choice_against_a_real_service(served):
    """``decide demo`` drives a real ``decide serve``; run again once the service has learned the first run, its reward rate is well above random choice.

    The second run waits for the learner, so the test does not depend on how many rounds a second this machine makes.
    """
    url = f"http://{served.host}:{served.port}"
    first, _ = demo(url, 1000, 500)
    assert "created loop 'demo'" in first
    deadline = time.monotonic() + 30
    while served.request("GET", "/loops/demo")["examplesLearned"] < 1000 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert served.request("GET", "/loops/demo")["examplesLearned"] >= 1000
    again, rows = demo(url, 400, 200)
    assert "continuing loop 'demo'" in again
    for _, rate, random, _, version in rows:
        assert version > 1 and rate > random + 0.15, again
