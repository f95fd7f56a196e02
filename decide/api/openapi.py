"""The OpenAPI 3.1 document of the whole API, with bodies generated from the pydantic schemas."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from pydantic.json_schema import models_json_schema

from decide import __version__
from decide.api import bodies
from decide.api.models import ModelInfo, RegisterModelRequest

blueprint = Blueprint("openapi", __name__)

MODELS = (
    bodies.RankRequest,
    bodies.RankResponse,
    bodies.RewardRequest,
    bodies.RewardBody,
    bodies.ActivateRequest,
    bodies.Accepted,
    bodies.CreateLoopRequest,
    bodies.RollbackRequest,
    bodies.LoopInfo,
    bodies.PolicyVersionInfo,
    RegisterModelRequest,
    ModelInfo,
)

PROBLEM = {
    "type": "object",
    "description": "RFC 9457 problem details; `field` names the offending request field.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "field": {"type": "string"},
    },
    "required": ["title", "status", "detail"],
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _operation(summary: str, body: str | None, responses: dict[int, tuple[str, str | None]], **extra: Any) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": {}}
    if body:
        operation["requestBody"] = {"required": True, **_json(_ref(body))}
    for status, (description, schema) in responses.items():
        operation["responses"][str(status)] = {"description": description, **(_json(_ref(schema)) if schema else {})}
    operation["responses"]["default"] = {
        "description": "Error",
        "content": {"application/problem+json": {"schema": _ref("Problem")}},
    }
    return operation | extra


def _path_parameter(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def document() -> dict[str, Any]:
    _, definitions = models_json_schema([(model, "validation") for model in MODELS], ref_template="#/components/schemas/{model}")
    components = definitions.get("$defs", {}) | {"Problem": PROBLEM}
    event = [_path_parameter("eventId")]
    loop = [_path_parameter("name")]
    model = [_path_parameter("name") | {"description": "The model's name."}]
    versioned = [_path_parameter("apiVersion")]
    evaluation_query = [
        {"name": "since", "in": "query", "required": False, "schema": {"type": "string"}},
        {"name": "until", "in": "query", "required": False, "schema": {"type": "string"}},
        {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1, "maximum": 500000}},
        {"name": "confidence", "in": "query", "required": False, "schema": {"type": "number", "minimum": 0.5, "maximum": 0.999}},
        {"name": "candidate", "in": "query", "required": False, "schema": {"type": "array", "items": {"type": "string"}}},
    ]
    api_version_query = [{"name": "api-version", "in": "query", "required": False, "schema": {"type": "string"}}]
    paths = {
        "/rank": {"post": _operation("Choose an action and log the decision", "RankRequest", {201: ("Decision", "RankResponse")})},
        "/reward": {"post": _operation("Report the reward of a decision", "RewardRequest", {202: ("Accepted", "Accepted")})},
        "/activate": {"post": _operation("Activate a deferred decision", "ActivateRequest", {202: ("Accepted", "Accepted")})},
        "/personalizer/{apiVersion}/rank": {"post": _operation("Personalizer v1.0 rank", "RankRequest", {201: ("Decision", "RankResponse")}, parameters=versioned)},
        "/personalizer/{apiVersion}/events/{eventId}/reward": {"post": _operation("Personalizer v1.0 reward", "RewardBody", {204: ("Accepted", None)}, parameters=versioned + event)},
        "/personalizer/{apiVersion}/events/{eventId}/activate": {"post": _operation("Personalizer v1.0 activate", None, {204: ("Accepted", None)}, parameters=versioned + event)},
        "/personalizer/rank": {"post": _operation("Personalizer 2022-09-01-preview rank", "RankRequest", {201: ("Decision", "RankResponse")}, parameters=api_version_query)},
        "/personalizer/events/{eventId}/reward": {"post": _operation("Personalizer 2022-09-01-preview reward", "RewardBody", {204: ("Accepted", None)}, parameters=api_version_query + event)},
        "/personalizer/events/{eventId}/activate": {"post": _operation("Personalizer 2022-09-01-preview activate", None, {204: ("Accepted", None)}, parameters=api_version_query + event)},
        "/loops": {
            "get": _operation("List loops", None, {200: ("Loops", None)}),
            "post": _operation("Create a loop", "CreateLoopRequest", {201: ("Created", "LoopInfo")}),
        },
        "/loops/{name}": {
            "get": _operation("Show a loop", None, {200: ("Loop", "LoopInfo")}, parameters=loop),
            "delete": _operation("Delete a loop and its versions", None, {204: ("Deleted", None)}, parameters=loop),
        },
        "/loops/{name}/config": {
            "patch": {
                **_operation("Change settings (a new policy version)", None, {200: ("New version", "PolicyVersionInfo")}, parameters=loop),
                "requestBody": {"required": True, **_json({"type": "object", "description": "Settings to change; see docs/configuration.md"})},
            }
        },
        "/loops/{name}/versions": {"get": _operation("Policy version history", None, {200: ("Versions", None)}, parameters=loop)},
        "/loops/{name}/rollback": {"post": _operation("Serve an earlier version again", "RollbackRequest", {200: ("New version", "PolicyVersionInfo")}, parameters=loop)},
        "/loops/{name}/reset": {"post": _operation("Forget everything learned", None, {200: ("New version", "PolicyVersionInfo")}, parameters=loop)},
        "/loops/{name}/evaluation": {"get": _operation("Off-policy evaluation of the loop's logged decisions", None, {200: ("Estimates", None)}, parameters=loop + evaluation_query)},
        "/loops/{name}/report": {
            "get": {
                **_operation("The evaluation as a self-contained HTML report", None, {}, parameters=loop + evaluation_query),
                "responses": {"200": {"description": "HTML report", "content": {"text/html": {}}}},
            }
        },
        "/models": {
            "get": _operation("List registered models", None, {200: ("Models", None)}),
            "post": _operation("Register a model", "RegisterModelRequest", {201: ("Registered", "ModelInfo")}),
        },
        "/models/{name}": {
            "get": _operation("Show a model and its replicas", None, {200: ("Model", "ModelInfo")}, parameters=model),
            "patch": {
                **_operation("Change a model's settings (a new version)", None, {200: ("New version", "ModelInfo")}, parameters=model),
                "requestBody": {"required": True, **_json({"type": "object", "description": "Settings to change; see docs/models.md"})},
            },
            "delete": _operation("Remove a model", None, {204: ("Removed", None)}, parameters=model),
        },
        "/healthz": {"get": _operation("Liveness", None, {200: ("Alive", None)})},
        "/readyz": {"get": _operation("Readiness: database, schema, default loop", None, {200: ("Ready", None)})},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "Prometheus text format", "content": {"text/plain": {}}}}}},
        "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "decide", "version": __version__, "description": "Online contextual-bandit decisions: rank, reward, learn."},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"subscriptionKey": {"type": "apiKey", "in": "header", "name": "Ocp-Apim-Subscription-Key"}},
        },
    }


@blueprint.get("/openapi.json")
def openapi():
    return document()
