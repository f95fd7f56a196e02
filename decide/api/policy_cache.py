"""Each API worker serves from immutable in-memory snapshots and reloads one when its version changes.

A worker looks at the loops' current versions at most every ``poll_interval``
seconds (one small query), so a new version is served within about that time
of its commit, without any request paying more than the rare reload.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from decide.config import LoopConfig
from decide.features import FeatureSpace
from decide.policies.base import Arrays, Policy
from decide.store import queries
from decide.store.arrays import unpack


@dataclass(frozen=True)
class ServedPolicy:
    loop: str
    version: int
    config: LoopConfig
    policy: Policy
    space: FeatureSpace
    snapshot: Arrays


def load(session: Session, loop: str, number: int) -> ServedPolicy:
    """Build the serving form of one policy version."""
    row = queries.version(session, loop, number)
    config = queries.config_of(row)
    policy = config.build_policy()
    return ServedPolicy(
        loop=loop,
        version=number,
        config=config,
        policy=policy,
        space=config.feature_space(),
        snapshot=policy.snapshot(unpack(row.statistics)),
    )


class PolicyCache:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        poll_interval: float,
        clock: Callable[[], float] = time.monotonic,
        read_versions: Callable[[], dict[str, int]] | None = None,
    ) -> None:
        """``read_versions`` gives every loop's current version (by default an ORM query on ``sessions``)."""
        self.sessions = sessions
        self.poll_interval = poll_interval
        self.clock = clock
        self.read_versions = read_versions or self._query_versions
        self.served: dict[str, ServedPolicy] = {}
        self.versions: dict[str, int] = {}
        self.checked_at = -float("inf")
        self._refreshing = threading.Lock()

    def get(self, loop: str) -> ServedPolicy:
        """The policy to serve for ``loop`` now; raises ``LoopNotFound``.

        When a look is due, one thread looks and the others serve what is known
        meanwhile. A loop this worker has not seen yet forces a look, so a loop is
        usable as soon as its creation is acknowledged.
        """
        if self.clock() - self.checked_at >= self.poll_interval and self._refreshing.acquire(blocking=False):
            try:
                self._refresh()
            finally:
                self._refreshing.release()
        if loop not in self.versions:
            self._refresh()
        number = self.versions.get(loop)
        if number is None:
            raise queries.LoopNotFound(loop)
        served = self.served.get(loop)
        if served is None or served.version != number:
            with self.sessions() as session:
                served = self.served[loop] = load(session, loop, number)
        return served

    def _refresh(self) -> None:
        self.versions = self.read_versions()
        self.checked_at = self.clock()
        for gone in set(self.served) - set(self.versions):
            self.served.pop(gone, None)

    def _query_versions(self) -> dict[str, int]:
        with self.sessions() as session:
            return queries.current_versions(session)
