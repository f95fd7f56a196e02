"""A backend process: one replica of one model, batching requests from API workers.

    python -m decide.serving.backend --name NAME --version N --socket PATH --spec JSON

The main thread multiplexes the connections (``selectors``) and queues
requests; one compute thread takes batches off the queue, runs the model and
replies. The socket appears at PATH (an atomic rename) only once the model is
loaded, so clients never reach a replica that cannot answer yet. A replica
exits when its supervisor goes away, drains its queue on SIGTERM, exits with
``EXIT_LOAD`` when the model cannot load and ``EXIT_MEMORY`` when the model ran
out of its memory allowance, and otherwise never lets a model error end it.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any

import numpy as np

from decide.serving.batching import Aimd, BatchQueue, Request
from decide.serving.loading import BatchFunction, LoadError, load, make_batch, predictions
from decide.serving.protocol import ERROR, REJECTED, FrameReader, ProtocolError, frame
from decide.serving.spec import ModelSpec

EXIT_LOAD = 3
EXIT_MEMORY = 4
SWITCH_INTERVAL = 0.0005

log = logging.getLogger("decide.serving.backend")


class Peer:
    """One client connection; the I/O thread reads it, both threads write it."""

    def __init__(self, connection: socket.socket) -> None:
        self.connection = connection
        self.reader = FrameReader()
        self.lock = threading.Lock()

    def send(self, data: bytes) -> None:
        try:
            with self.lock:
                self.connection.sendall(data)
        except OSError:
            pass  # the client went away; the I/O thread notices and closes the connection


class Backend:
    def __init__(self, name: str, version: int, spec: ModelSpec, function: BatchFunction, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.version = version
        self.spec = spec
        self.function = function
        self.clock = clock
        self.queue = BatchQueue(spec.queueLimit, spec.maxWaitMs / 1000.0, clock)
        self.aimd = Aimd.for_objective(spec.maxBatchSize, spec.latencyObjectiveMs / 1000.0, spec.maxWaitMs / 1000.0)
        self.counts = {"computed": 0, "batches": 0, "rejected": 0, "failed": 0}
        self.latencies: deque[float] = deque(maxlen=4096)
        self.batch_sizes: deque[int] = deque(maxlen=256)
        self.computing_since: float | None = None

    def handle(self, message: dict[str, Any], peer: Peer) -> None:
        if message.get("op") == "status":
            peer.send(frame({"id": message["id"], **self.status()}))
        elif not self.queue.put(message["id"], message["x"], self._budget(message), peer):
            self.counts["rejected"] += 1
            peer.send(frame({"id": message["id"], "e": REJECTED, "d": f"the queue of {self.spec.queueLimit} requests is full"}))

    def _budget(self, message: dict[str, Any]) -> float:
        """Seconds the request may still take: its budget, cut to what is left of its caller's deadline."""
        budget = float(message["b"])
        return min(budget, float(message["t"]) - self.clock()) if "t" in message else budget

    def status(self) -> dict[str, Any]:
        latencies = np.array(self.latencies.copy() or [0.0])  # copy() is atomic; iterating while computing is not
        started = self.computing_since
        return {
            "model": self.name,
            "version": self.version,
            "pid": os.getpid(),
            "batchSize": self.aimd.size,
            "queued": len(self.queue),
            "expired": self.queue.expired,
            "busy": 0.0 if started is None else self.clock() - started,
            "recentBatchSizes": list(self.batch_sizes.copy()),
            "p50": float(np.quantile(latencies, 0.5)),
            "p99": float(np.quantile(latencies, 0.99)),
            **self.counts,
        }

    def compute_forever(self) -> None:
        """Take batches until the queue is closed and drained."""
        while batch := self.queue.take(self.aimd.size, self.aimd.expected):
            self.compute(batch)

    def compute(self, batch: list[Request]) -> None:
        started = self.clock()
        self.computing_since = started
        try:
            outputs = predictions(self.function(make_batch(self.spec, [request.input for request in batch])), len(batch))
        except MemoryError:
            self._reply_all(batch, "the model ran out of memory; its replica restarts")
            os._exit(EXIT_MEMORY)
        except Exception as error:
            log.exception("model %s failed on a batch of %d", self.name, len(batch))
            self.counts["failed"] += len(batch)
            self._reply_all(batch, f"the model failed: {type(error).__name__}: {error}")
            return
        finally:
            self.computing_since = None
        finished = self.clock()
        compute = finished - started
        self.aimd.observe(len(batch), compute)
        self.counts["computed"] += len(batch)
        self.counts["batches"] += 1
        self.batch_sizes.append(len(batch))
        replies: dict[Peer, list[bytes]] = defaultdict(list)
        for request, output in zip(batch, outputs, strict=True):
            self.latencies.append(finished - request.arrival)
            reply = {"id": request.id, "y": output, "v": self.version, "q": started - request.arrival, "c": compute, "n": len(batch)}
            try:
                replies[request.reply_to].append(frame(reply))
            except (TypeError, ValueError) as error:
                replies[request.reply_to].append(frame({"id": request.id, "e": ERROR, "d": f"the prediction is not JSON: {error}"}))
        for peer, frames in replies.items():
            peer.send(b"".join(frames))

    def _reply_all(self, batch: list[Request], detail: str) -> None:
        for request in batch:
            request.reply_to.send(frame({"id": request.id, "e": ERROR, "d": detail}))

    def serve(self, listener: socket.socket, stopping: Callable[[], bool]) -> None:
        """Read requests until ``stopping()`` or the parent process is gone."""
        parent = os.getppid()
        selector = selectors.DefaultSelector()
        selector.register(listener, selectors.EVENT_READ)
        while not stopping() and os.getppid() == parent:
            for key, _ in selector.select(0.2):
                if key.fileobj is listener:
                    connection, _ = listener.accept()
                    connection.settimeout(5.0)
                    selector.register(connection, selectors.EVENT_READ, Peer(connection))
                    continue
                peer: Peer = key.data
                try:
                    data = peer.connection.recv(1 << 16)
                    if not data:
                        raise ConnectionResetError("closed by the client")
                    for message in peer.reader.feed(data):
                        self.handle(message, peer)
                except (OSError, ProtocolError, ValueError, KeyError, TypeError):
                    selector.unregister(peer.connection)
                    peer.connection.close()
                except Exception:
                    log.exception("dropping a connection whose request could not be handled")
                    selector.unregister(peer.connection)
                    peer.connection.close()
        listener.close()


def listen(path: str) -> socket.socket:
    """Bind at a private name, then rename into place: the path always leads to a ready replica."""
    staging = f"{path}.{os.getpid()}.tmp"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(staging)
    listener.listen(512)
    os.rename(staging, path)
    return listener


def limit_memory(megabytes: int) -> None:
    """Let the process allocate ``megabytes`` more address space than it holds now (the loaded model)."""
    with open("/proc/self/statm") as statm:
        held = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (held + megabytes * 2**20, hard))


def command(name: str, version: int, spec: ModelSpec, path: str) -> list[str]:
    return [sys.executable, "-m", "decide.serving.backend", "--name", name, "--version", str(version), "--socket", path, "--spec", spec.model_dump_json()]


def spawn(name: str, version: int, spec: ModelSpec, path: str, environment: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(command(name, version, spec, path), env=environment)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--version", type=int, required=True)
    parser.add_argument("--socket", required=True)
    parser.add_argument("--spec", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s backend {args.name}[{os.getpid()}] %(message)s")
    spec = ModelSpec.model_validate_json(args.spec)
    try:
        function = load(spec)
    except LoadError as error:
        log.error("%s", error)
        raise SystemExit(EXIT_LOAD) from error
    backend = Backend(args.name, args.version, spec, function)
    # The compute thread gives up the interpreter lock inside numpy and must get it back quickly
    # from the I/O thread, or every batch waits out the default 5 ms switch interval several times.
    sys.setswitchinterval(SWITCH_INTERVAL)
    computer = threading.Thread(target=backend.compute_forever, name="compute", daemon=True)
    computer.start()
    if spec.memoryLimitMb:
        limit_memory(spec.memoryLimitMb)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    backend.serve(listen(args.socket), stopping.is_set)
    backend.queue.close()
    computer.join(timeout=max(1.0, 2 * spec.deadline))


if __name__ == "__main__":
    main()
