"""Keep every registered model's replicas running: start, check, restart, replace, stop.

``decide serve`` runs one supervisor (``decide models serve``) beside the API.
Each ``interval`` it reads the registry and makes the running replicas match it:

* a replica that exited (a crash, running out of memory, a kill) is started
  again; one that keeps dying within ``QUICK_DEATH`` seconds is started again
  after a doubling delay, up to ``MAX_BACKOFF``;
* a replica whose compute has been busy on one batch, or which has not answered
  its health check, for longer than the model's ``hangTimeoutS`` is killed and
  started again (one still loading gets ``START_TIMEOUT``);
* a new version starts new replicas; each old one is stopped once its successor
  answers, so the socket path always leads to a replica that can answer;
* replicas of removed models, or beyond a lowered replica count, are stopped.
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session, sessionmaker

from decide.serving import registry
from decide.serving.backend import EXIT_LOAD, EXIT_MEMORY, spawn
from decide.serving.client import Backends
from decide.serving.metrics import BackendMetrics
from decide.serving.protocol import socket_path
from decide.serving.registry import Registered

QUICK_DEATH = 10.0
MAX_BACKOFF = 10.0
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0

log = logging.getLogger("decide.serving.supervisor")

Key = tuple[str, int]


@dataclass
class Replica:
    model: str
    index: int
    version: int
    process: subprocess.Popen
    started: float
    answered: float = -math.inf
    counted: dict[str, int] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.answered > -math.inf


@dataclass
class Retiring:
    process: subprocess.Popen
    successor: Replica | None
    since: float
    stopped_at: float | None = None


class Supervisor:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        directory: str,
        *,
        interval: float = 0.5,
        metrics_registry: CollectorRegistry | None = None,
        environment: dict[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self.sessions = sessions
        self.directory = directory
        self.interval = interval
        self.environment = environment
        self.clock = clock
        self.metrics = BackendMetrics(metrics_registry or CollectorRegistry())
        self.replicas: dict[Key, Replica] = {}
        self.retiring: list[Retiring] = []
        self.crashes: dict[Key, int] = {}
        self.not_before: dict[Key, float] = {}

    def run(self, stopping: Callable[[], bool]) -> None:
        """Reconcile every ``interval`` until ``stopping()``; then stop every replica."""
        try:
            while not stopping():
                try:
                    self.step()
                except Exception:
                    log.exception("supervising model backends failed; trying again")
                time.sleep(self.interval)
        finally:
            self.close()

    def step(self) -> None:
        with self.sessions() as session:
            models = registry.all_models(session)
        wanted = {(name, index): model for name, model in models.items() for index in range(model.spec.replicas)}
        for key in [key for key in self.replicas if key not in wanted]:
            self._retire(self.replicas.pop(key), None)
            _remove(socket_path(self.directory, *key))
        for key, model in wanted.items():
            replica = self.replicas.get(key)
            if replica is not None and replica.process.poll() is not None:
                self._exited(key, replica)
                replica = None
            if replica is None:
                self._start(key, model)
            elif replica.version != model.version:
                self.metrics.restarts.labels(key[0], "updated").inc()
                del self.replicas[key]
                self._retire(replica, self._start(key, model))
        # Fresh connections each time: a cached one would keep reaching a replica already replaced at its path.
        backends = Backends(self.directory)
        try:
            for name, model in models.items():
                self._check(backends, name, model)
        finally:
            backends.close()
        self._reap()

    def _start(self, key: Key, model: Registered) -> Replica | None:
        now = self.clock()
        if now < self.not_before.get(key, -math.inf):
            return None
        process = spawn(model.name, model.version, model.spec, socket_path(self.directory, *key), self.environment)
        replica = self.replicas[key] = Replica(key[0], key[1], model.version, process, now)
        log.info("started %s replica %d (version %d) as pid %d", key[0], key[1], model.version, process.pid)
        return replica

    def _exited(self, key: Key, replica: Replica) -> None:
        code = replica.process.returncode
        why = {EXIT_LOAD: "its model could not be loaded", EXIT_MEMORY: "its model ran out of memory"}.get(code, f"exit status {code}")
        lived = self.clock() - replica.started
        self.crashes[key] = self.crashes.get(key, 0) + 1 if lived < QUICK_DEATH else 0
        delay = 0.0 if not self.crashes[key] else min(MAX_BACKOFF, 0.1 * 2 ** self.crashes[key])
        self.not_before[key] = self.clock() + delay
        self.metrics.restarts.labels(key[0], "exited").inc()
        log.warning("%s replica %d (pid %d) ended: %s; restarting in %.1f s", key[0], key[1], replica.process.pid, why, delay)
        del self.replicas[key]

    def _check(self, backends: Backends, name: str, model: Registered) -> None:
        """Ask each replica how it is; kill one that is hung; record its counters."""
        now = self.clock()
        reports = backends.status(name, model.spec.replicas, timeout=min(1.0, model.spec.hangTimeoutS / 2))
        up = 0
        for index, report in enumerate(reports):
            replica = self.replicas.get((name, index))
            if replica is None:
                continue
            if report is not None and report["pid"] == replica.process.pid:
                up += 1
                replica.answered = now
                self._count(replica, report)
                if report["busy"] > model.spec.hangTimeoutS:
                    self._kill_hung(replica, f"busy on one batch for {report['busy']:.1f} s")
            elif replica.ready and now - replica.answered > model.spec.hangTimeoutS:
                self._kill_hung(replica, f"silent for {now - replica.answered:.1f} s")
            elif not replica.ready and now - replica.started > START_TIMEOUT:
                self._kill_hung(replica, f"not ready {START_TIMEOUT:.0f} s after starting")
        self.metrics.up.labels(name).set(up)

    def _count(self, replica: Replica, report: dict[str, Any]) -> None:
        self.metrics.batch_target.labels(replica.model, str(replica.index)).set(report["batchSize"])
        for name, counter in (("expired", self.metrics.expired), ("computed", self.metrics.computed)):
            counter.labels(replica.model).inc(report[name] - replica.counted.get(name, 0))
            replica.counted[name] = report[name]

    def _kill_hung(self, replica: Replica, why: str) -> None:
        log.warning("%s replica %d (pid %d) is hung (%s); killing it", replica.model, replica.index, replica.process.pid, why)
        self.metrics.restarts.labels(replica.model, "hung").inc()
        replica.process.kill()

    def _retire(self, replica: Replica, successor: Replica | None) -> None:
        self.retiring.append(Retiring(replica.process, successor, self.clock()))

    def _reap(self) -> None:
        """Stop retiring replicas once their successor answers; kill those that do not stop."""
        now = self.clock()
        for retiring in list(self.retiring):
            if retiring.process.poll() is not None:
                self.retiring.remove(retiring)
            elif retiring.stopped_at is None:
                successor = retiring.successor
                if successor is None or successor.ready or successor.process.poll() is not None or now - retiring.since > START_TIMEOUT:
                    retiring.process.terminate()
                    retiring.stopped_at = now
            elif now - retiring.stopped_at > STOP_TIMEOUT:
                retiring.process.kill()

    def close(self) -> None:
        """Stop every replica (SIGTERM: they drain), killing those that do not end in time."""
        processes = [replica.process for replica in self.replicas.values()] + [retiring.process for retiring in self.retiring]
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for key in self.replicas:
            _remove(socket_path(self.directory, *key))
        self.replicas.clear()
        self.retiring.clear()


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
