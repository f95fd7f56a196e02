"""Connections from one process (an API worker, the supervisor, a benchmark) to backend replicas.

Backends are found by path: replica ``i`` of model ``m`` listens on
``socket_path(directory, m, i)``. Each process keeps one connection per replica,
shared by its threads: requests carry ids, a reader thread per connection hands
each reply to its waiting call, so a slow reply never holds up another.
Connections are opened lazily and again after a failure (at most every
``retry_interval``), and are never inherited: a forked gunicorn worker starts
with none, because a socket shared with its parent would mix their replies.
"""

from __future__ import annotations

import itertools
import math
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from decide.serving.protocol import FrameReader, ProtocolError, frame, socket_path

LOST = "lost"


class Call:
    """A request in flight: ``wait`` for the reply, or have ``callback`` run with it."""

    __slots__ = ("connection", "id", "done", "reply", "callback")

    def __init__(self, connection: Connection, id: int, callback: Callable[[Call], None] | None) -> None:
        self.connection = connection
        self.id = id
        self.done = threading.Event()
        self.reply: dict[str, Any] | None = None
        self.callback = callback

    def resolve(self, reply: dict[str, Any]) -> None:
        self.reply = reply
        self.done.set()
        if self.callback is not None:
            self.callback(self)

    def wait(self, timeout: float) -> dict[str, Any] | None:
        """The reply, or None when none came within ``timeout`` (the call is then forgotten)."""
        if self.done.wait(max(timeout, 0.0)):
            return self.reply
        self.connection.pending.pop(self.id, None)
        return self.reply


class Connection:
    def __init__(self, path: str, connect_timeout: float = 0.5) -> None:
        self.path = path
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.socket.settimeout(connect_timeout)
            self.socket.connect(path)
            self.socket.settimeout(None)
        except OSError:
            self.socket.close()
            raise
        self.pending: dict[int, Call] = {}
        self.lock = threading.Lock()
        self.alive = True
        threading.Thread(target=self._read, name=f"backend-reader {os.path.basename(path)}", daemon=True).start()

    def send(self, message: dict[str, Any], call: Call, timeout: float) -> bool:
        """Send within ``timeout``: a replica that stops reading must not hold its callers past their deadlines.

        A frame left half-sent at the timeout ends the connection (the stream is
        no longer in step), which fails the other calls on it at once.
        """
        data = memoryview(frame(message))
        deadline = time.monotonic() + timeout
        if not self.lock.acquire(timeout=max(timeout, 0.0)):
            return False
        try:
            self.pending[call.id] = call
            while data:
                try:
                    data = data[self.socket.send(data, socket.MSG_DONTWAIT):]
                except BlockingIOError:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not select.select([], [self.socket], [], remaining)[1]:
                        raise TimeoutError("the backend replica is not reading") from None
        except OSError:
            self._lost()
            return False
        finally:
            self.lock.release()
        return True

    def _read(self) -> None:
        reader = FrameReader()
        try:
            while data := self.socket.recv(1 << 16):
                for reply in reader.feed(data):
                    call = self.pending.pop(reply.get("id"), None)
                    if call is not None:
                        call.resolve(reply)
        except (OSError, ProtocolError, ValueError):
            pass
        self._lost()

    def _lost(self) -> None:
        """Fail every call still waiting at once: their backend is gone, there is time left to fall back."""
        self.alive = False
        self.socket.close()
        while True:
            try:
                _, call = self.pending.popitem()
            except KeyError:
                return
            call.resolve({"id": call.id, "e": LOST, "d": "the backend replica went away"})

    def close(self) -> None:
        if self.alive:
            self.alive = False
            try:
                self.socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.socket.close()


class Backends:
    def __init__(self, directory: str, retry_interval: float = 0.1) -> None:
        self.directory = directory
        self.retry_interval = retry_interval
        self.ids = itertools.count(1)
        self.lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self.pid = os.getpid()
        self.connections: dict[str, Connection] = {}
        self.failed_at: dict[str, float] = {}

    def call(
        self, model: str, replicas: int, message: dict[str, Any], timeout: float, callback: Callable[[Call], None] | None = None
    ) -> Call | None:
        """Send ``message`` (its id is filled in) to the least busy reachable replica within ``timeout``; None when none takes it."""
        deadline = time.monotonic() + timeout
        for _ in range(2):
            connection = self._least_busy(model, replicas)
            if connection is None:
                return None
            call = Call(connection, next(self.ids), callback)
            if connection.send(message | {"id": call.id, "t": deadline}, call, deadline - time.monotonic()):
                return call
        return None

    def status(self, model: str, replicas: int, timeout: float) -> list[dict[str, Any] | None]:
        """Each replica's own report, or None for a replica that does not answer."""
        calls = []
        for replica in range(replicas):
            connection = self._connection(socket_path(self.directory, model, replica))
            call = Call(connection, next(self.ids), None) if connection else None
            calls.append(call if call and connection.send({"op": "status", "id": call.id}, call, timeout) else None)
        deadline = time.monotonic() + timeout
        replies = [call.wait(deadline - time.monotonic()) if call else None for call in calls]
        return [reply if reply and "e" not in reply else None for reply in replies]

    def _least_busy(self, model: str, replicas: int) -> Connection | None:
        best = None
        for replica in range(replicas):
            connection = self._connection(socket_path(self.directory, model, replica))
            if connection is not None and (best is None or len(connection.pending) < len(best.pending)):
                best = connection
        return best

    def _connection(self, path: str) -> Connection | None:
        if os.getpid() != self.pid:
            self._reset()
        connection = self.connections.get(path)
        if connection is not None and connection.alive:
            return connection
        with self.lock:
            connection = self.connections.get(path)
            if connection is not None and connection.alive:
                return connection
            now = time.monotonic()
            if now - self.failed_at.get(path, -math.inf) < self.retry_interval:
                return None
            try:
                connection = self.connections[path] = Connection(path)
            except OSError:
                self.failed_at[path] = now
                return None
            return connection

    def close(self) -> None:
        if os.getpid() == self.pid:
            for connection in self.connections.values():
                connection.close()
        self._reset()
