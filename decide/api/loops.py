"""Loop administration: create, inspect, configure, list versions, roll back, reset, delete."""

from __future__ import annotations

import json

from flask import Blueprint, Response, request
from sqlalchemy.exc import IntegrityError

from decide.api.context import parse, services
from decide.api.problems import Problem, invalid, not_found
from decide.api.schemas import CreateLoopRequest, LoopInfo, PolicyVersionInfo, RollbackRequest
from decide.config import ConfigError, LoopConfig
from decide.store import queries
from decide.store.models import Loop, PolicyVersion

blueprint = Blueprint("loops", __name__, url_prefix="/loops")


def loop_info(loop: Loop, row: PolicyVersion) -> dict:
    return LoopInfo(
        name=loop.name,
        currentVersion=row.version,
        createdAt=loop.created_at,
        examplesLearned=row.examples_learned,
        config=json.loads(row.config),
    ).model_dump()


def version_info(row: PolicyVersion) -> dict:
    return PolicyVersionInfo(
        version=row.version, createdAt=row.created_at, examplesLearned=row.examples_learned, note=row.note, config=json.loads(row.config)
    ).model_dump()


def _write(operation):
    """Run ``operation(session)`` in a writer transaction, turning lookup and config errors into problems."""
    try:
        with services().writer_sessions.begin() as session:
            return operation(session)
    except ConfigError as error:
        raise invalid(f"config.{error.field}", str(error)) from error
    except (queries.LoopNotFound, queries.VersionNotFound) as error:
        raise not_found(str(error)) from error


def _show(session, name: str) -> dict:
    row = queries.current(session, name)
    return loop_info(session.get(Loop, name), row)


@blueprint.get("")
def list_loops():
    with services().sessions() as session:
        return {"loops": [_show(session, name) for name in queries.loop_names(session)]}


@blueprint.post("")
def create():
    body = parse(CreateLoopRequest)

    def operation(session):
        if session.get(Loop, body.name) is not None:
            raise Problem(409, "Loop exists", f"a loop named '{body.name}' already exists; configure it with PATCH /loops/{body.name}/config", field="name")
        queries.create_loop(session, body.name, LoopConfig.from_json(body.config))
        return _show(session, body.name)

    try:
        return _write(operation), 201
    except IntegrityError as error:
        raise Problem(409, "Loop exists", f"a loop named '{body.name}' already exists", field="name") from error


@blueprint.get("/<name>")
def show(name: str):
    return _write(lambda session: _show(session, name))


@blueprint.patch("/<name>/config")
def configure(name: str):
    try:
        changes = json.loads(request.get_data() or b"null")
    except ValueError as error:
        raise invalid("", "the body is not valid JSON; send an object of settings to change") from error
    if not isinstance(changes, dict):
        raise invalid("", "send a JSON object of the settings to change, e.g. {\"rewardWaitTime\": 60}")
    return _write(lambda session: version_info(queries.configure(session, name, changes)))


@blueprint.get("/<name>/versions")
def versions(name: str):
    def operation(session):
        queries.current(session, name)
        return {"versions": [version_info(row) for row in queries.versions(session, name)]}

    return _write(operation)


@blueprint.post("/<name>/rollback")
def rollback(name: str):
    body = parse(RollbackRequest)
    return _write(lambda session: version_info(queries.rollback(session, name, body.version)))


@blueprint.post("/<name>/reset")
def reset(name: str):
    return _write(lambda session: version_info(queries.reset(session, name)))


@blueprint.delete("/<name>")
def delete(name: str):
    def operation(session):
        queries.current(session, name)
        queries.delete_loops(session, [name])

    _write(operation)
    return Response(status=204)
