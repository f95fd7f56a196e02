"""The Azure Personalizer paths, so both published Personalizer SDKs work against decide unchanged.

v1.0 (and v1.1-preview) put the version in the path; 2022-09-01-preview puts it
in ``api-version``. Like Personalizer, a reward or activation for an event whose
join has closed is accepted and ignored (204); decide counts such rewards in
``decide_late_rewards_total``. Multi-slot ranking is not supported: its paths
answer 404 rather than being mistaken for a versioned single-slot path.
"""

from __future__ import annotations

from flask import Blueprint, Response

from decide.api.bodies import RankRequest, RewardBody
from decide.api.context import parse, services
from decide.api.decisions import answer
from decide.api.problems import invalid, not_found

blueprint = Blueprint("personalizer", __name__, url_prefix="/personalizer")

EVENT_ID_LIMIT = 256


@blueprint.post("/<api_version>/rank")
@blueprint.post("/rank")
def rank(api_version: str | None = None):
    _check_api_version(api_version)
    body = services().decider.rank(parse(RankRequest))
    del body["loop"]
    return answer(body, 201)


@blueprint.post("/<api_version>/events/<event_id>/reward")
@blueprint.post("/events/<event_id>/reward")
def reward(event_id: str, api_version: str | None = None):
    _check_api_version(api_version)
    _check_event_id(event_id)
    services().decider.reward(event_id, parse(RewardBody).value, None)
    return Response(status=204)


@blueprint.post("/<api_version>/events/<event_id>/activate")
@blueprint.post("/events/<event_id>/activate")
def activate(event_id: str, api_version: str | None = None):
    _check_api_version(api_version)
    _check_event_id(event_id)
    services().decider.activate(event_id, None)
    return Response(status=204)


def _check_api_version(api_version: str | None) -> None:
    """Path versions look like ``v1.0``; anything else (``multislot``) is not an endpoint of decide."""
    if api_version is not None and not api_version.startswith("v"):
        raise not_found(f"/personalizer/{api_version}/... is not supported; decide serves single-slot rank (v1.0, v1.1-preview, 2022-09-01-preview)")


def _check_event_id(event_id: str) -> None:
    if len(event_id) > EVENT_ID_LIMIT:
        raise invalid("eventId", f"eventId is longer than {EVENT_ID_LIMIT} characters")
