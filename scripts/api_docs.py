"""Render decide's OpenAPI document as the Markdown API reference, docs/api.md.

    python scripts/api_docs.py           write docs/api.md
    python scripts/api_docs.py --check   exit 1 if docs/api.md is not what this renders

Endpoints, parameters, request and response schemas, field types, constraints,
defaults and success statuses come from ``decide.api.openapi.document()``, the
same document the service serves at ``GET /openapi.json``. What that document
does not carry yet is kept below, next to the renderer:

* ``FIELD_NOTES``: a description for every schema field the document leaves
  undescribed (a description in the document always wins);
* ``PARAMETER_NOTES``: a description for every path and query parameter;
* ``OPERATION_NOTES``: for every operation, what it does, its body when the
  document names no schema, and its error statuses (read from decide/api).

Rendering fails, naming what is missing, when the document has a field,
parameter or operation that these tables do not describe, or when a table
describes one the document no longer has, so a changed API cannot leave a
stale reference behind (tests/unit/test_api_docs.py runs it).
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "api.md"

sys.path.insert(0, str(ROOT))

LOOP_NAME_RULE = "1 to 128 characters: letters, digits, `_`, `.` and `-`, starting with a letter or a digit"

FIELD_NOTES: dict[tuple[str, str], str] = {
    ("RankRequest", "contextFeatures"): (
        "Features of the context: a list of feature objects, or one object. Flattened and hashed as "
        "described in [configuration.md](configuration.md#features). Absent or null: no context features."
    ),
    ("RankRequest", "actions"): (
        "The candidates, from 1 up to `DECIDE_MAX_ACTIONS` (default 50). Action ids must be unique within the request."
    ),
    ("RankRequest", "excludedActions"): (
        "Ids of actions in `actions` that must not be chosen. Each must be the id of an action in the request, "
        "and at least one action must stay eligible. Excluded actions are returned with probability 0."
    ),
    ("RankRequest", "eventId"): (
        "Your id for this decision; send it with the reward. Generated (32 hex digits) when absent. Use ids that are "
        "unique across the deployment, not only within a loop: a later decision with an eventId already used is "
        "not learned from. The same eventId against the same policy version gets the same answer."
    ),
    ("RankRequest", "deferActivation"): (
        "When true, the decision is not learned from until `POST /activate` (or the Personalizer activate path) "
        "arrives for its eventId; if that does not happen within the loop's `activationTimeout`, the decision is "
        "closed as `deactivated` and never learned from."
    ),
    ("RankRequest", "loop"): (
        f"The loop that decides: {LOOP_NAME_RULE}. Absent: the default loop (`DECIDE_DEFAULT_LOOP`, `default`). "
        "decide's addition to the Personalizer contract."
    ),
    ("RankableAction", "id"): "The action's id, unique within the request.",
    ("RankableAction", "features"): "Features of the action, in the same shape as `contextFeatures`.",
    ("RankResponse", "eventId"): "The decision's event id: the one sent, or the one generated.",
    ("RankResponse", "rewardActionId"): "The id of the chosen action: use it, then report how well it did.",
    ("RankResponse", "ranking"): (
        "Every action of the request with its probability of being chosen: the chosen action first, then the "
        "others by decreasing probability (request order breaks ties). Excluded actions have probability 0."
    ),
    ("RankResponse", "policyVersion"): "The loop's policy version that made the decision.",
    ("RankResponse", "loop"): "The loop that made the decision. Not returned on the `/personalizer` paths.",
    ("RankedAction", "id"): "An action id from the request.",
    ("RankedAction", "probability"): (
        "The probability with which this action was chosen; the decision is logged with these same "
        "probabilities (the chosen action's is its propensity). The probabilities of one ranking sum to 1."
    ),
    ("RewardBody", "value"): (
        "The reward: a finite number (NaN and infinities are refused). Several rewards for one event are "
        "combined as the loop's `rewardAggregation` says."
    ),
    ("RewardRequest", "value"): (
        "The reward: a finite number (NaN and infinities are refused). Several rewards for one event are "
        "combined as the loop's `rewardAggregation` says."
    ),
    ("RewardRequest", "eventId"): (
        "The eventId of the decision. A reward for an event decide has not seen yet is accepted: it waits for its "
        "decision."
    ),
    ("RewardRequest", "loop"): (
        "Optional. When given, the loop must exist (404 otherwise). The reward joins its decision in the "
        "decision's loop whatever this says."
    ),
    ("ActivateRequest", "eventId"): "The eventId of a decision ranked with `deferActivation: true`.",
    ("ActivateRequest", "loop"): "Optional. When given, the loop must exist (404 otherwise).",
    ("Accepted", "eventId"): "The event the reward or activation is for.",
    ("Accepted", "status"): "Always `accepted`: the record is in the event log and will be joined.",
    ("CreateLoopRequest", "name"): f"The new loop's name: {LOOP_NAME_RULE}.",
    ("CreateLoopRequest", "config"): (
        "Settings that differ from the defaults, e.g. `{\"policy\": \"linucb\", \"rewardWaitTime\": 60}`; see "
        "[configuration.md](configuration.md#loop-settings). Unknown settings are refused."
    ),
    ("RollbackRequest", "version"): (
        "The version to serve again. It must still be kept (see `keepVersions`); it is copied as a new version."
    ),
    ("LoopInfo", "name"): "The loop's name.",
    ("LoopInfo", "currentVersion"): "The policy version served now.",
    ("LoopInfo", "createdAt"): "When the loop was created, in Unix seconds.",
    ("LoopInfo", "examplesLearned"): (
        "How many joined examples the current version has learned from, counted since learning last started "
        "(creation, reset, or a configuration change that restarted learning)."
    ),
    ("LoopInfo", "config"): "The current version's complete configuration (every loop setting).",
    ("PolicyVersionInfo", "version"): "The version number; versions of a loop count up from 1 and are never reused.",
    ("PolicyVersionInfo", "createdAt"): "When the version was written, in Unix seconds.",
    ("PolicyVersionInfo", "examplesLearned"): "How many joined examples this version has learned from.",
    ("PolicyVersionInfo", "note"): (
        "Why the version exists: `created`, `learned N examples`, `configured`, "
        "`configured; learning restarted (feature space or policy changed)`, `rollback to N` or `reset`."
    ),
    ("PolicyVersionInfo", "config"): "The version's complete configuration (every loop setting).",
    ("Problem", "type"): "Always `about:blank`.",
    ("Problem", "title"): "A short name of the kind of error, e.g. `Invalid request`, `Not found`, `Join closed`.",
    ("Problem", "status"): "The HTTP status code, repeated.",
    ("Problem", "detail"): "What went wrong and how to fix it, for a person.",
    ("Problem", "field"): (
        "The offending field as a path into the request, e.g. `actions[1].id`, `contextFeatures[0].user.age` "
        "or `config.rewardWaitTime`; absent when no single field is at fault."
    ),
}

PARAMETER_NOTES: dict[str, str] = {
    "apiVersion": "The Personalizer API version in the path, e.g. `v1.0` or `v1.1-preview.3`; any value is accepted.",
    "api-version": "The Personalizer API version, e.g. `2022-09-01-preview`; any value, or none, is accepted.",
    "eventId": "The eventId of the decision, at most 256 characters.",
    "name": "The loop's name.",
    "since": "Evaluate decisions from this time on: ISO 8601 or epoch seconds.",
    "until": "Evaluate decisions up to this time: ISO 8601 or epoch seconds.",
    "limit": "At most this many logged events (default 20000).",
    "confidence": "Confidence level of the intervals (default 0.95).",
    "candidate": "A policy to evaluate besides the online one, e.g. `linucb:ridge=0.3`; repeatable (see docs/evaluation.md).",
}

BAD_BODY = ("400", "invalid body: malformed JSON, a missing, mistyped or unknown field (the problem names it)")
TOO_LARGE = ("413", "body larger than `DECIDE_MAX_BODY_BYTES`")
AUTH = ("401", "missing or wrong `Ocp-Apim-Subscription-Key` (only when `DECIDE_API_KEYS` is set)")
NO_LOOP = ("404", "`loop` names no existing loop")
NO_SUCH_LOOP = ("404", "no such loop")
LONG_EVENT_ID = ("400", "eventId longer than 256 characters")
LOG_DOWN = ("503", "the event log did not take the record: nothing was recorded, retry the same request")
RANK_ERRORS = [
    (
        "400",
        ("invalid body: malformed JSON, a missing, mistyped or unknown field; no actions, a duplicate action id or "
        "more actions than `DECIDE_MAX_ACTIONS`; an excluded id that is not an action of the request, or every "
        "action excluded; a feature that cannot be featurized (a non-finite number, an object inside a list); "
        "feature values so large that the action scores overflow (beyond about 3.4e38)"),
    ),
    AUTH,
    NO_LOOP,
    TOO_LARGE,
    ("503", LOG_DOWN[1] + " (with the same eventId the answer is the same)"),
]

OPERATION_NOTES: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/rank"): {
        "text": (
            "Chooses one of `actions` for the context, logs the decision with the probability of every action, "
            "and answers once the decision is in the event log."
        ),
        "errors": RANK_ERRORS,
    },
    ("post", "/reward"): {
        "text": (
            "Logs a reward for a decision. Accepted rewards are joined to their decision by the worker; a reward "
            "may arrive before its decision. A reward whose event is already closed is refused with 410 and not "
            "recorded."
        ),
        "errors": [
            BAD_BODY,
            AUTH,
            NO_LOOP,
            ("410", "the event's join is already closed: its reward wait time has passed and the worker closed it"),
            TOO_LARGE,
            LOG_DOWN,
        ],
    },
    ("post", "/activate"): {
        "text": (
            "Activates a decision ranked with `deferActivation: true`, which opens its reward wait time. "
            "Activating an event that was not deferred, or twice, changes nothing."
        ),
        "errors": [
            BAD_BODY,
            AUTH,
            NO_LOOP,
            ("410", "the event's join is already closed"),
            TOO_LARGE,
            LOG_DOWN,
        ],
    },
    ("post", "/personalizer/{apiVersion}/rank"): {
        "text": (
            "`POST /rank` at the Personalizer v1.0 path (`apiVersion` `v1.0`). Same body, including the optional "
            "`loop`; the answer leaves out `loop`."
        ),
        "errors": RANK_ERRORS,
    },
    ("post", "/personalizer/{apiVersion}/events/{eventId}/reward"): {
        "text": (
            "Logs a reward, answering as Personalizer does: 204 with no body. A reward whose join has already "
            "closed is answered 204 too, and ignored (counted in `decide_late_rewards_total`)."
        ),
        "errors": [
            BAD_BODY,
            LONG_EVENT_ID,
            AUTH,
            TOO_LARGE,
            LOG_DOWN,
        ],
    },
    ("post", "/personalizer/{apiVersion}/events/{eventId}/activate"): {
        "text": (
            "Activates a deferred decision; no body is read. An activation for a closed join is answered 204 and "
            "ignored."
        ),
        "errors": [LONG_EVENT_ID, AUTH, LOG_DOWN],
    },
    ("post", "/personalizer/rank"): {
        "text": "`POST /rank` at the Personalizer 2022-09-01-preview path. The answer leaves out `loop`.",
        "errors": RANK_ERRORS,
    },
    ("post", "/personalizer/events/{eventId}/reward"): {
        "text": (
            "The 2022-09-01-preview reward path; behaves as the v1.0 one (late rewards: 204, ignored)."
        ),
        "errors": [
            BAD_BODY,
            LONG_EVENT_ID,
            AUTH,
            TOO_LARGE,
            LOG_DOWN,
        ],
    },
    ("post", "/personalizer/events/{eventId}/activate"): {
        "text": "The 2022-09-01-preview activate path; behaves as the v1.0 one.",
        "errors": [LONG_EVENT_ID, AUTH, LOG_DOWN],
    },
    ("get", "/loops"): {
        "text": "Every loop, by name.",
        "body": "`{\"loops\": [LoopInfo, ...]}` (see [LoopInfo](#loopinfo)).",
        "errors": [AUTH],
    },
    ("post", "/loops"): {
        "text": "Creates a loop with its first policy version (nothing learned).",
        "errors": [
            ("400", "invalid body or name, or a setting that is unknown or out of range (`field` is `config.<setting>`)"),
            AUTH,
            ("409", "a loop of that name exists"),
            TOO_LARGE,
        ],
    },
    ("get", "/loops/{name}"): {"text": "The loop and its current configuration.", "errors": [AUTH, NO_SUCH_LOOP]},
    ("delete", "/loops/{name}"): {
        "text": "Deletes the loop and all its policy versions.",
        "errors": [AUTH, NO_SUCH_LOOP],
    },
    ("patch", "/loops/{name}/config"): {
        "text": (
            "Changes some settings: the body is a JSON object of the settings to change, e.g. "
            "`{\"rewardWaitTime\": 60}`. Writes a new version. What was learned carries over unless the change "
            "alters the feature space or the kind of statistics (see "
            "[configuration.md](configuration.md#what-a-change-does-to-learned-state)). `policyParams` is replaced "
            "as a whole, not merged."
        ),
        "errors": [
            ("400", "the body is not a JSON object, or a setting is unknown or out of range (`field` is `config.<setting>`)"),
            AUTH,
            NO_SUCH_LOOP,
            TOO_LARGE,
        ],
    },
    ("get", "/loops/{name}/versions"): {
        "text": "The loop's kept policy versions, newest first.",
        "body": "`{\"versions\": [PolicyVersionInfo, ...]}` (see [PolicyVersionInfo](#policyversioninfo)).",
        "errors": [AUTH, NO_SUCH_LOOP],
    },
    ("post", "/loops/{name}/rollback"): {
        "text": (
            "Serves an earlier version again by copying its configuration and statistics into a new version; "
            "history is never rewritten. Examples learned after that version are not learned again."
        ),
        "errors": [BAD_BODY, AUTH, ("404", "no such loop, or no such version (never written, or pruned)"), TOO_LARGE],
    },
    ("post", "/loops/{name}/reset"): {
        "text": "Forgets everything learned: a new version with the same configuration and empty statistics.",
        "errors": [AUTH, NO_SUCH_LOOP],
    },
    ("get", "/loops/{name}/evaluation"): {
        "text": ("Off-policy estimates (IPS, SNIPS, DM, DR with intervals and diagnostics) of the online policy, the "
                 "first-action baseline, uniform random and any candidates, from the loop's archived joined decisions."),
        "errors": [AUTH, ("400", "a bad query parameter or candidate (the problem names it)"),
                   ("404", "no such loop, or no joined decisions in the range yet")],
    },
    ("get", "/loops/{name}/report"): {
        "text": "The same evaluation as a self-contained HTML report with embedded plots.",
        "errors": [AUTH, ("400", "a bad query parameter or candidate (the problem names it)"),
                   ("404", "no such loop, or no joined decisions in the range yet")],
    },
    ("get", "/models"): {
        "text": "Every registered model with its current version and settings.",
        "body": "`{\"models\": [ModelInfo, ...]}` (see [ModelInfo](#modelinfo)).",
        "errors": [AUTH],
    },
    ("post", "/models"): {
        "text": (
            "Registers a model at version 1. Only its settings are stored: its code is loaded by its backend "
            "processes, which `decide models serve` (part of `decide serve`) starts within about a second. See "
            "[models.md](models.md)."
        ),
        "errors": [
            ("400", "invalid body: an unknown or out-of-range setting, or a `target` that does not fit its `kind` (the problem names the field)"),
            AUTH,
            ("409", "a model of that name is registered"),
            TOO_LARGE,
        ],
    },
    ("get", "/models/{name}"): {
        "text": "The model's settings, and each replica's live report: up or not, its version, batch size, queue, counters and recent latency.",
        "errors": [AUTH, ("404", "no such model")],
    },
    ("patch", "/models/{name}"): {
        "text": (
            "Changes some settings: the body is a JSON object of the settings to change, e.g. `{\"replicas\": 2}`. "
            "Writes a new version, even for an empty object (which reloads the model's code); each replica is "
            "replaced once its successor answers."
        ),
        "errors": [
            ("400", "the body is not a JSON object, or a setting is unknown or out of range (the problem names it)"),
            AUTH,
            ("404", "no such model"),
            TOO_LARGE,
        ],
    },
    ("delete", "/models/{name}"): {
        "text": "Removes the model; its replicas stop. Model loops that list it answer with `fallback.reason` `unregistered`.",
        "errors": [AUTH, ("404", "no such model")],
    },
    ("get", "/healthz"): {
        "text": "Answers while the process runs; checks nothing else. Needs no key.",
        "body": "`{\"status\": \"ok\"}`",
        "errors": [],
    },
    ("get", "/readyz"): {
        "text": "Ready when the database answers, its schema is at the newest migration and the default loop exists. Needs no key.",
        "body": "`{\"status\": \"ready\", \"loops\": <number of loops>}`",
        "errors": [("503", "the database does not answer, its schema is not current (run `decide migrate`), or the default loop is missing")],
    },
    ("get", "/metrics"): {
        "text": (
            "Under `decide serve` the metrics are summed over the API's worker processes and include "
            "its learner's; a separate `decide worker --metrics-port` serves its own. Needs no key. The API's: "
            "`decide_http_requests_total{endpoint,status}`, `decide_http_request_seconds{endpoint}` (histogram), "
            "`decide_decisions_total{loop}`, `decide_rewards_total{loop}` (`loop=\"_unnamed\"` for a reward that names no loop; "
            "see configuration.md), `decide_late_rewards_total`, "
            "`decide_event_log_failures_total`; and the learner's: `decide_pipeline_records_total`, "
            "`decide_pipeline_examples_total{reason}`, `decide_pipeline_versions_total{loop}`, "
            "`decide_pipeline_duplicates_total`, `decide_pipeline_late_rewards_total`, "
            "`decide_pipeline_offset_conflicts_total`, `decide_pipeline_cycle_seconds` (histogram), and with the embedded log "
            "`decide_event_log_trimmed_total`."
        ),
        "errors": [],
    },
    ("get", "/openapi.json"): {
        "text": "The OpenAPI 3.1 document this reference is generated from. Needs no key.",
        "body": "application/json: the OpenAPI document",
        "errors": [],
    },
}

COMMON_ERRORS = [
    ("404", "no such path (`Not found`)"),
    ("405", "the path exists, but not with this method (`Method Not Allowed`)"),
    ("500", "an unexpected failure (`Internal error`); the details are in the service's log"),
]


class Incomplete(ValueError):
    """The OpenAPI document and the notes above disagree; the message says what to add or remove."""


def _schema_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.lower())
    return text.replace(" ", "-")


def _constraints(schema: dict[str, Any]) -> list[str]:
    found = []
    low, high = schema.get("minLength"), schema.get("maxLength")
    if low is not None and high is not None:
        found.append(f"{low} to {high} characters")
    elif low is not None:
        found.append(f"at least {low} characters")
    elif high is not None:
        found.append(f"at most {high} characters")
    if "pattern" in schema:
        found.append(f"matches `{schema['pattern']}`")
    if "minimum" in schema:
        found.append(f"at least {schema['minimum']}")
    if "maximum" in schema:
        found.append(f"at most {schema['maximum']}")
    if "minItems" in schema:
        found.append(f"at least {schema['minItems']} item{'s' if schema['minItems'] != 1 else ''}")
    if "maxItems" in schema:
        found.append(f"at most {schema['maxItems']} items")
    return found


def _type(schema: dict[str, Any]) -> tuple[str, list[str]]:
    """A readable type and the constraints found along the way."""
    if "$ref" in schema:
        name = _schema_name(schema["$ref"])
        return f"[{name}](#{_anchor(name)})", []
    if "anyOf" in schema:
        options = [option for option in schema["anyOf"] if option.get("type") != "null"]
        nullable = len(options) < len(schema["anyOf"])
        rendered = [_type(option) for option in options]
        kinds = [kind for kind, _ in rendered] + (["null"] if nullable else [])
        separator = ", or " if any(" " in kind for kind in kinds) else " or "
        constraints = [constraint for _, found in rendered for constraint in found]
        return separator.join(kinds), constraints
    kind = schema.get("type")
    if kind == "array":
        item, constraints = _type(schema.get("items", {}))
        return f"array of {item}", _constraints(schema) + [f"each: {c}" for c in constraints]
    if kind == "object":
        return "object", _constraints(schema)
    if kind is None:
        return "any", []
    return str(kind), _constraints(schema)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _describe_field(schema_name: str, field: str, schema: dict[str, Any]) -> str:
    description = schema.get("description") or FIELD_NOTES.get((schema_name, field))
    if not description:
        raise Incomplete(f"{schema_name}.{field} has no description: add one to the schema or to FIELD_NOTES in scripts/api_docs.py")
    return description


def _fields_table(schema_name: str, schema: dict[str, Any]) -> list[str]:
    required = set(schema.get("required", []))
    lines = ["| Field | Type | Required | Constraints and default | Description |", "|---|---|---|---|---|"]
    for field, definition in schema.get("properties", {}).items():
        kind, constraints = _type(definition)
        if "default" in definition and definition["default"] is not None:
            default = definition["default"]
            constraints.append(f"default `{str(default).lower() if isinstance(default, bool) else default}`")
        lines.append(
            "| `{}` | {} | {} | {} | {} |".format(
                field,
                _cell(kind),
                "yes" if field in required else "no",
                _cell("; ".join(constraints)),
                _cell(_describe_field(schema_name, field, definition)),
            )
        )
    return lines


def _parameter_description(parameter: dict[str, Any]) -> str:
    description = parameter.get("description") or PARAMETER_NOTES.get(parameter["name"])
    if not description:
        raise Incomplete(f"parameter {parameter['name']!r} has no description: add it to PARAMETER_NOTES in scripts/api_docs.py")
    return description


def _body_schema(content: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    for media_type, media in content.items():
        if "schema" in media:
            return media_type, media["schema"]
    return None


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, operation) for path, item in document["paths"].items() for method, operation in item.items()]


def _check_notes(document: dict[str, Any]) -> None:
    """Every note must describe something the document has, and every operation must have notes."""
    operations = {(method, path) for method, path, _ in _operations(document)}
    missing = sorted(operations - OPERATION_NOTES.keys())
    stale = sorted(OPERATION_NOTES.keys() - operations)
    schemas = document["components"]["schemas"]
    fields = {(name, field) for name, schema in schemas.items() for field in schema.get("properties", {})}
    stale_fields = sorted(FIELD_NOTES.keys() - fields)
    parameters = {p["name"] for _, _, operation in _operations(document) for p in operation.get("parameters", [])}
    stale_parameters = sorted(PARAMETER_NOTES.keys() - parameters)
    problems = []
    if missing:
        problems.append(f"operations without OPERATION_NOTES: {missing}")
    if stale:
        problems.append(f"OPERATION_NOTES for operations the document no longer has: {stale}")
    if stale_fields:
        problems.append(f"FIELD_NOTES for fields the document no longer has: {stale_fields}")
    if stale_parameters:
        problems.append(f"PARAMETER_NOTES for parameters the document no longer has: {stale_parameters}")
    if problems:
        raise Incomplete("scripts/api_docs.py is out of step with the OpenAPI document: " + "; ".join(problems))


def _render_operation(method: str, path: str, operation: dict[str, Any]) -> list[str]:
    notes = OPERATION_NOTES[(method, path)]
    lines = [f"### {method.upper()} {path}", "", f"{operation['summary']}. {notes['text']}", ""]
    parameters = operation.get("parameters", [])
    if parameters:
        lines += ["| Parameter | In | Required | Type | Description |", "|---|---|---|---|---|"]
        for parameter in parameters:
            kind, _ = _type(parameter.get("schema", {}))
            lines.append(
                f"| `{parameter['name']}` | {parameter['in']} | {'yes' if parameter.get('required') else 'no'} | "
                f"{kind} | {_cell(_parameter_description(parameter))} |"
            )
        lines.append("")
    body = operation.get("requestBody")
    if body:
        media_type, schema = _body_schema(body["content"]) or ("application/json", {})
        kind, _ = _type(schema)
        described = schema.get("description")
        lines.append(f"Request body ({media_type}): {kind}" + (f". {described}" if described and "$ref" not in schema else "") + ".")
        lines.append("")
    lines += ["| Status | Meaning | Body |", "|---|---|---|"]
    for status, response in operation["responses"].items():
        if status == "default":
            continue
        found = _body_schema(response.get("content", {}))
        if found:
            media_type, schema = found
            kind, _ = _type(schema)
            shown = f"{media_type}: {kind}"
        elif "content" in response:
            shown = ", ".join(response["content"])
        else:
            shown = notes.get("body", "none")
        lines.append(f"| {status} | {_cell(response['description'])} | {_cell(shown)} |")
    default = operation["responses"].get("default")
    for code, meaning in notes["errors"]:
        lines.append(f"| {code} | {_cell(meaning)} | application/problem+json: [Problem](#problem) |")
    if default and not notes["errors"]:
        lines.append("| other | see [Errors](#errors) | application/problem+json: [Problem](#problem) |")
    lines.append("")
    return lines


def render(document: dict[str, Any]) -> str:
    """The Markdown reference for ``document``; raises ``Incomplete`` when notes are missing or stale."""
    _check_notes(document)
    info = document["info"]
    schemes = document["components"].get("securitySchemes", {})
    lines = [
        "# API reference",
        "",
        "<!-- Generated by scripts/api_docs.py from decide.api.openapi.document(); do not edit by hand. -->",
        "",
        (f"{info['title']} {info['version']}: {info['description']} OpenAPI {document['openapi']}; the service "
        "serves the document at `GET /openapi.json`."),
        "",
        ("This page is generated from that document: run `python scripts/api_docs.py` after changing the API, and "
        "`tests/unit/test_api_docs.py` fails while this page is out of date. Descriptions and error statuses that "
        "the document does not carry yet are kept next to the generator, in `scripts/api_docs.py`."),
        "",
        "## Conventions",
        "",
        ("- Bodies are JSON; field names are camelCase, as in the Azure Personalizer v1.0 contract. Unknown fields "
        "are refused with 400, as are NaN and infinite numbers."),
        "- The request body may be at most `DECIDE_MAX_BODY_BYTES` (default 262144) bytes, or the answer is 413.",
        "- Every error is `application/problem+json`; see [Errors](#errors).",
        "- Limits and settings are described in [configuration.md](configuration.md).",
        "",
        "## Authentication",
        "",
    ]
    for name, scheme in schemes.items():
        lines.append(
            f"Security scheme `{name}`: an API key in the `{scheme['name']}` {scheme['in']}. The key is checked only "
            "when the service is started with `DECIDE_API_KEYS` (a comma-separated list of accepted keys); then "
            "every endpoint except `/healthz`, `/readyz`, `/metrics` and `/openapi.json` answers 401 without a "
            "listed key. Without `DECIDE_API_KEYS` the header is accepted and ignored, so Personalizer clients "
            "that always send it work unchanged."
        )
    lines += ["", "## Endpoints", "", "| Method | Path | Summary | Success |", "|---|---|---|---|"]
    for method, path, operation in _operations(document):
        success = ", ".join(status for status in operation["responses"] if status != "default")
        heading = f"{method.upper()} {path}"
        lines.append(f"| {method.upper()} | [`{path}`](#{_anchor(heading)}) | {_cell(operation['summary'])} | {success} |")
    lines.append("")
    groups = [
        ("Decisions", lambda path: path in ("/rank", "/reward", "/activate")),
        ("Personalizer paths", lambda path: path.startswith("/personalizer")),
        ("Loops", lambda path: path.startswith("/loops")),
        ("Models", lambda path: path.startswith("/models")),
        ("Operations", lambda path: True),
    ]
    done: set[tuple[str, str]] = set()
    for title, belongs in groups:
        members = [(m, p, o) for m, p, o in _operations(document) if (m, p) not in done and belongs(p)]
        if not members:
            continue
        lines += [f"## {title}", ""]
        if title == "Personalizer paths":
            lines += [
                ("The Azure Personalizer paths, so that both published Personalizer client SDKs work against decide "
                "unchanged: v1.0 puts the version in the path, 2022-09-01-preview in the `api-version` query "
                "parameter. They decide in the loop the body's `loop` names, or the default loop. Rewards and "
                "activations answer 204 with no body. See [personalizer-migration.md](personalizer-migration.md)."),
                "",
            ]
        for method, path, operation in members:
            done.add((method, path))
            lines += _render_operation(method, path, operation)
    schemas = document["components"]["schemas"]
    lines += ["## Schemas", ""]
    for name, schema in schemas.items():
        lines += [f"### {name}", ""]
        if schema.get("description"):
            lines += [schema["description"], ""]
        if schema.get("additionalProperties") is False:
            lines += ["Unknown fields are refused.", ""]
        lines += _fields_table(name, schema) + [""]
    lines += [
        "## Errors",
        "",
        ("Every error answer is an RFC 9457 problem document with the media type `application/problem+json`: "
        "`type`, `title`, `status`, `detail` and, where one field is at fault, `field` (see [Problem](#problem)). "
        "When the body fails schema validation, the problem also has `errors`: a list of `{\"field\", \"detail\"}`, "
        "one per bad field, and `detail` joins the first five."),
        "",
        "```json",
        "{",
        '  "type": "about:blank",',
        '  "title": "Invalid request",',
        '  "status": 400,',
        '  "detail": "value: must be a finite number (not NaN or Infinity)",',
        '  "field": "value",',
        '  "errors": [{"field": "value", "detail": "must be a finite number (not NaN or Infinity)"}]',
        "}",
        "```",
        "",
        "Besides the statuses listed with each endpoint, any path can answer:",
        "",
    ]
    lines += [f"- {code}: {meaning}" for code, meaning in COMMON_ERRORS]
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if docs/api.md is out of date")
    arguments = parser.parse_args(argv)

    from decide.api.openapi import document

    try:
        text = render(document())
    except Incomplete as error:
        print(error, file=sys.stderr)
        return 1
    if arguments.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current == text:
            return 0
        diff = difflib.unified_diff(current.splitlines(), text.splitlines(), "docs/api.md", "rendered", lineterm="", n=1)
        print("\n".join(list(diff)[:60]), file=sys.stderr)
        print("docs/api.md is out of date: run python scripts/api_docs.py", file=sys.stderr)
        return 1
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
