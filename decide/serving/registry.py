"""The model registry in SQL: named models, each with its current version and settings.

Every change writes a new version number, which is how backends know to
reload and how decisions record which code answered them. The table is
created by migration 0002.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Float, Integer, String, Text, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from decide.errors import Conflict, NotFound
from decide.serving.spec import ModelSpec
from decide.store.models import Base


class ModelRow(Base):
    __tablename__ = "models"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    spec: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class ModelNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"there is no model named '{name}'")
        self.name = name


class ModelExists(Conflict):
    def __init__(self, name: str) -> None:
        super().__init__(f"a model named '{name}' is already registered; change it with update", field="name")
        self.name = name


@dataclass(frozen=True)
class Registered:
    """A model as registered now."""

    name: str
    version: int
    spec: ModelSpec
    created_at: float
    updated_at: float

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "config": self.spec.model_dump(),
        }


def _registered(row: ModelRow) -> Registered:
    return Registered(row.name, row.version, ModelSpec.model_validate_json(row.spec), row.created_at, row.updated_at)


def register(session: Session, name: str, spec: ModelSpec) -> Registered:
    if session.get(ModelRow, name) is not None:
        raise ModelExists(name)
    now = time.time()
    row = ModelRow(name=name, version=1, spec=spec.model_dump_json(), created_at=now, updated_at=now)
    session.add(row)
    session.flush()
    return _registered(row)


def update(session: Session, name: str, changes: dict) -> Registered:
    """Apply ``changes`` as a new version (even an empty change: that reloads the model's code)."""
    row = session.get(ModelRow, name, with_for_update=True)
    if row is None:
        raise ModelNotFound(name)
    row.spec = ModelSpec.model_validate_json(row.spec).changed(changes).model_dump_json()
    row.version += 1
    row.updated_at = time.time()
    session.flush()
    return _registered(row)


def remove(session: Session, name: str) -> None:
    if session.execute(delete(ModelRow).where(ModelRow.name == name)).rowcount == 0:
        raise ModelNotFound(name)


def get(session: Session, name: str) -> Registered:
    row = session.get(ModelRow, name)
    if row is None:
        raise ModelNotFound(name)
    return _registered(row)


def all_models(session: Session) -> dict[str, Registered]:
    return {row.name: _registered(row) for row in session.scalars(select(ModelRow).order_by(ModelRow.name))}


def versions(session: Session) -> dict[str, int]:
    """Every model's current version, in one cheap query (API workers and the supervisor poll it)."""
    return {name: version for name, version in session.execute(select(ModelRow.name, ModelRow.version))}
