"""How a long-running command (``serve``, ``worker``, ``models serve``) learns that it should stop."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType


def stop_requested() -> Callable[[], bool]:
    """A check that turns true once the process receives SIGTERM or SIGINT; a long-running loop polls it and returns."""
    requested = threading.Event()

    def request(_signum: int, _frame: FrameType | None) -> None:
        requested.set()

    signal.signal(signal.SIGTERM, request)
    signal.signal(signal.SIGINT, request)
    return requested.is_set
