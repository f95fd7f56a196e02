"""Model registry administration: register, list, inspect (with live replica status), update, remove.

Registering stores the model's settings only; its code is imported by its
backend processes (never by the API), which the supervisor starts within about
a second. Every update is a new version, and its replicas are replaced.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response
from pydantic import BaseModel, Field

from decide.api.context import parse, parse_changes, services
from decide.serving import registry
from decide.serving.spec import ModelName, ModelSpec

blueprint = Blueprint("models", __name__, url_prefix="/models")

STATUS_TIMEOUT = 0.5


class RegisterModelRequest(ModelSpec):
    name: ModelName = Field(description="The model's name: what model loops list in `models` and use as action ids.")


class ModelInfo(BaseModel):
    name: str = Field(description="The model's name.")
    version: int = Field(description="Counts up from 1 with every update; decisions record the version that answered.")
    createdAt: float = Field(description="When the model was registered, in Unix seconds.")
    updatedAt: float = Field(description="When the current version was written, in Unix seconds.")
    config: dict[str, Any] = Field(description="Every setting of the current version (see RegisterModelRequest).")
    backends: list[dict[str, Any]] | None = Field(
        None, description="GET /models/{name} only: each replica's live report, or `{\"replica\": i, \"up\": false}`."
    )


def _write(operation):
    """``operation(session)`` in one writer transaction."""
    with services().writer_sessions.begin() as session:
        return operation(session)


@blueprint.get("")
def list_models():
    with services().sessions() as session:
        return {"models": [model.to_json() for model in registry.all_models(session).values()]}


@blueprint.post("")
def register():
    body = parse(RegisterModelRequest)
    spec = ModelSpec.model_validate(body.model_dump(exclude={"name"}))
    return _write(lambda session: registry.register(session, body.name, spec).to_json()), 201


@blueprint.get("/<name>")
def show(name: str):
    model = _write(lambda session: registry.get(session, name))
    reports = services().decider.models.backends.status(name, model.spec.replicas, STATUS_TIMEOUT)
    backends = [{"replica": index, "up": report is not None, **(report or {})} for index, report in enumerate(reports)]
    for backend in backends:
        backend.pop("id", None)
    return ModelInfo(**model.to_json(), backends=backends).model_dump()


@blueprint.patch("/<name>")
def update(name: str):
    changes = parse_changes('{"replicas": 2}')
    return _write(lambda session: registry.update(session, name, changes).to_json())


@blueprint.delete("/<name>")
def remove(name: str):
    _write(lambda session: registry.remove(session, name))
    return Response(status=204)
