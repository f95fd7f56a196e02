"""The wire format between API workers and backends: length-prefixed JSON frames on Unix sockets.

Requests carry an ``id`` (replies may come back in any order, so one
connection carries many requests at once), a time ``budget`` in seconds, and
the caller's deadline ``t`` on ``time.monotonic()``. Backends run on the same
host (the sockets are Unix sockets), where that clock is the same in every
process, so a request that waited in a stalled replica's socket buffer past its
caller's deadline is dropped, not computed for nobody; the budget alone bounds
a request without ``t``:

    {"id": 7, "x": <input>, "b": 0.05, "t": 81234.56}   predict
    {"id": 8, "op": "status"}                   counters and the current batch size

    {"id": 7, "y": <prediction>, "v": 3, "q": queue s, "c": compute s, "n": batch size}
    {"id": 7, "e": "rejected" | "error", "d": "why"}
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from typing import Any

HEADER = struct.Struct("!I")
MAX_FRAME = 64 * 1024 * 1024
REJECTED = "rejected"
ERROR = "error"


class ProtocolError(ValueError):
    pass


def frame(message: dict[str, Any]) -> bytes:
    """One frame; raises ValueError for a message JSON cannot carry exactly (NaN, infinities)."""
    body = json.dumps(message, separators=(",", ":"), allow_nan=False).encode()
    return HEADER.pack(len(body)) + body


class FrameReader:
    """Splits a byte stream into messages."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        self.buffer += data
        messages = []
        while len(self.buffer) >= HEADER.size:
            (length,) = HEADER.unpack_from(self.buffer)
            if length > MAX_FRAME:
                raise ProtocolError(f"frame of {length} bytes is over the limit of {MAX_FRAME}")
            end = HEADER.size + length
            if len(self.buffer) < end:
                break
            messages.append(json.loads(bytes(self.buffer[HEADER.size:end])))
            del self.buffer[:end]
        return messages


def default_directory() -> str:
    """Where backends listen when ``DECIDE_BACKEND_DIR`` is not set: private to this user."""
    return os.path.join(tempfile.gettempdir(), f"decide-backends-{os.getuid()}")


def socket_path(directory: str, model: str, replica: int) -> str:
    """Replica ``replica`` of ``model`` listens here; long names are hashed to fit the Unix socket limit."""
    label = model if len(model) <= 40 else hashlib.blake2b(model.encode(), digest_size=10).hexdigest()
    return os.path.join(directory, f"{label}.{replica}.sock")
