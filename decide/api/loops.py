"""Loop administration over HTTP: the loop service (``decide.loops``) behind one route each."""

from __future__ import annotations

from flask import Blueprint, Response

from decide.api.bodies import CreateLoopRequest, RollbackRequest
from decide.api.context import parse, parse_changes, services

blueprint = Blueprint("loops", __name__, url_prefix="/loops")


@blueprint.get("")
def list_loops():
    return {"loops": services().loops.list()}


@blueprint.post("")
def create():
    body = parse(CreateLoopRequest)
    loops = services().loops
    loops.create(body.name, body.config)
    return loops.show(body.name), 201


@blueprint.get("/<name>")
def show(name: str):
    return services().loops.show(name)


@blueprint.patch("/<name>/config")
def configure(name: str):
    return services().loops.configure(name, parse_changes('{"rewardWaitTime": 60}'))


@blueprint.get("/<name>/versions")
def versions(name: str):
    return {"versions": services().loops.versions(name)}


@blueprint.post("/<name>/rollback")
def rollback(name: str):
    return services().loops.rollback(name, parse(RollbackRequest).version)


@blueprint.post("/<name>/reset")
def reset(name: str):
    return services().loops.reset(name)


@blueprint.delete("/<name>")
def delete(name: str):
    services().loops.delete(name)
    return Response(status=204)
