"""The queries decide needs about loops and their policy versions."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from decide.config import LoopConfig
from decide.errors import NotFound
from decide.policies.base import Arrays
from decide.store.arrays import pack, unpack
from decide.store.models import Loop, PolicyVersion


class LoopNotFound(NotFound):
    def __init__(self, loop: str) -> None:
        super().__init__(f"there is no loop named '{loop}'")
        self.loop = loop


class VersionNotFound(NotFound):
    def __init__(self, loop: str, version: int) -> None:
        super().__init__(f"loop '{loop}' has no version {version} (it may have been pruned; see keepVersions)")


def create_loop(session: Session, name: str, config: LoopConfig) -> PolicyVersion:
    now = time.time()
    session.add(Loop(name=name, created_at=now, current_version=0))
    session.flush()
    return add_version(session, name, config, {}, 0, "created")


def current_versions(session: Session) -> dict[str, int]:
    """Every loop's served version, in one cheap query (API workers poll it)."""
    return {name: number for name, number in session.execute(select(Loop.name, Loop.current_version))}


def loop_names(session: Session) -> list[str]:
    return list(session.scalars(select(Loop.name).order_by(Loop.name)))


def current(session: Session, loop: str, *, for_update: bool = False) -> PolicyVersion:
    """The version served now; ``for_update`` serializes writers of this loop."""
    query = select(Loop).where(Loop.name == loop)
    row = session.scalars(query.with_for_update() if for_update else query).one_or_none()
    if row is None:
        raise LoopNotFound(loop)
    return version(session, loop, row.current_version)


def version(session: Session, loop: str, number: int) -> PolicyVersion:
    row = session.get(PolicyVersion, (loop, number))
    if row is None:
        raise VersionNotFound(loop, number)
    return row


def versions(session: Session, loop: str) -> list[PolicyVersion]:
    return list(
        session.scalars(select(PolicyVersion).where(PolicyVersion.loop == loop).order_by(PolicyVersion.version.desc()))
    )


def add_version(
    session: Session, loop: str, config: LoopConfig, statistics: Arrays, examples_learned: int, note: str
) -> PolicyVersion:
    """Write the next version of ``loop``, make it current, and prune beyond ``keepVersions``."""
    row = session.get(Loop, loop)
    if row is None:
        raise LoopNotFound(loop)
    newest = session.scalar(select(PolicyVersion.version).where(PolicyVersion.loop == loop).order_by(PolicyVersion.version.desc()).limit(1)) or 0
    number = newest + 1
    created = PolicyVersion(
        loop=loop,
        version=number,
        created_at=time.time(),
        config=json.dumps(config.to_json()),
        statistics=pack(statistics),
        examples_learned=examples_learned,
        note=note,
    )
    session.add(created)
    row.current_version = number
    session.execute(
        delete(PolicyVersion).where(PolicyVersion.loop == loop, PolicyVersion.version <= number - config.keepVersions)
    )
    session.flush()
    return created


def config_of(row: PolicyVersion) -> LoopConfig:
    return LoopConfig(**json.loads(row.config))


def delete_loops(session: Session, names: Iterable[str]) -> None:
    for name in names:
        session.execute(delete(PolicyVersion).where(PolicyVersion.loop == name))
        session.execute(delete(Loop).where(Loop.name == name))


def ensure_loop(session: Session, name: str) -> None:
    """Create ``name`` with the default configuration unless it exists."""
    if session.get(Loop, name) is None:
        create_loop(session, name, LoopConfig())


def configure(session: Session, loop: str, changes: dict) -> PolicyVersion:
    """A new version with ``changes`` applied; what was learned carries over while it still means the same."""
    served = current(session, loop, for_update=True)
    before = config_of(served)
    after = LoopConfig.from_json(changes, base=before)
    if after.learns_like(before):
        return add_version(session, loop, after, unpack(served.statistics), served.examples_learned, "configured")
    return add_version(session, loop, after, {}, 0, "configured; learning restarted (feature space or policy changed)")


def rollback(session: Session, loop: str, number: int) -> PolicyVersion:
    """Serve an earlier version again, as a new version: history is never rewritten."""
    current(session, loop, for_update=True)
    old = version(session, loop, number)
    return add_version(session, loop, config_of(old), unpack(old.statistics), old.examples_learned, f"rollback to {number}")


def reset(session: Session, loop: str) -> PolicyVersion:
    served = current(session, loop, for_update=True)
    return add_version(session, loop, config_of(served), {}, 0, "reset")
