"""Gateway routes for /v1/buyers: store a buyer's search, hand it to the matcher, read results.

The gateway never matches: it stores the preferences and a pending match session and
stages BuyerMatchRequested in one statement (publishing.accepting), then publishes it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Request

from jorge_runtime.kafka.broker import event_message
from jorge_runtime.results import MATCH_SESSION
from schemas.buyers import (
    BUYER_ID_PATTERN,
    MATCH_SESSION_ID_PATTERN,
    BuyerMatchRequested,
    BuyerMatchRequestedPayload,
    BuyerPreferences,
    BuyerPreferencesView,
    MatchAccepted,
    MatchPropertiesRequest,
    MatchSessionView,
    SortBy,
    new_match_session_id,
)
from schemas.topics import BUYER_MATCH_REQUESTED
from services.gateway.dependencies import CallerDep, GatewayDep
from services.gateway.errors import BUS_DOWN, ApiError, documented_errors
from services.gateway.publishing import accepting
from services.gateway.results import WAIT_QUERY, accepted_or_result

router = APIRouter(tags=["buyers"])

_BUYER_ID = Path(pattern=BUYER_ID_PATTERN, examples=["buyer-001"])
_SESSION_ID = Path(pattern=MATCH_SESSION_ID_PATTERN, examples=["match-3f9c0a1b2c3d4e5f607182"])
_PREFERENCE_ERRORS = {
    "invalid_budget": (400, "invalid_budget", "budget_min (900000) is above budget_max (800000)."),
    "invalid_location": (400, "invalid_location", "Give latitude and longitude together, or neither."),
}


def _check_preferences(preferences: BuyerPreferences, sort_by: SortBy | None = None) -> None:
    """The rules a schema cannot express: 400 with a code naming the problem."""
    if preferences.budget_min > preferences.budget_max:
        raise ApiError(
            400,
            "invalid_budget",
            f"budget_min ({preferences.budget_min}) is above budget_max ({preferences.budget_max}).",
        )
    if (preferences.latitude is None) != (preferences.longitude is None):
        raise ApiError(400, "invalid_location", "Give latitude and longitude together, or neither.")
    if sort_by == "distance" and preferences.latitude is None:
        raise ApiError(400, "location_required", "sort_by=distance needs the buyer's latitude and longitude.")


@router.post(
    "/v1/buyers/match-properties",
    status_code=202,
    response_model=MatchAccepted,
    responses={
        200: {"model": MatchSessionView, "description": "With `wait`: the matcher's result, stored in time."},
        **documented_errors(
            **_PREFERENCE_ERRORS,
            location_required=(400, "location_required", "sort_by=distance needs the buyer's latitude …"),
            event_bus_unavailable=BUS_DOWN,
        ),
    },
)
async def match_properties(
    body: MatchPropertiesRequest,
    request: Request,
    caller: CallerDep,
    gw: GatewayDep,
    wait: float | None = WAIT_QUERY,
) -> Any:
    """Find homes for a buyer. Stores the buyer's preferences and a match session, and hands it
    to the matcher: 202 with `result_url`. With `wait=N` the answer is 200 with the ranked
    homes as soon as the matcher stored them, or still 202 after N seconds."""
    _check_preferences(body, body.sort_by)
    payload = BuyerMatchRequestedPayload(
        match_session_id=new_match_session_id(),
        buyer_id=body.buyer_id,
        preferences=body.preferences(),
        sort_by=body.sort_by,
        max_results=body.max_results,
    )
    event = BuyerMatchRequested(
        organization_id=caller.organization_id, correlation_id=request.state.request_id, payload=payload
    )
    message = event_message(event, topic=gw.topics(BUYER_MATCH_REQUESTED), key=body.buyer_id)

    await gw.buyers.open_session(
        accepting(gw, message), caller.organization_id, payload, request.state.request_id
    )
    session_id = payload.match_session_id
    accepted = MatchAccepted(
        match_session_id=session_id,
        buyer_id=body.buyer_id,
        result_url=f"/v1/buyers/match-sessions/{session_id}",
    )
    return await accepted_or_result(
        gw.results,
        MATCH_SESSION,
        session_id,
        wait,
        accepted,
        lambda: gw.buyers.session(gw.pool, caller.organization_id, session_id),
    )


@router.get(
    "/v1/buyers/match-sessions/{match_session_id}",
    response_model=MatchSessionView,
    responses=documented_errors(
        not_found=(404, "match_session_not_found", "No match session match-… in your organisation.")
    ),
)
async def get_match_session(
    caller: CallerDep,
    gw: GatewayDep,
    match_session_id: str = _SESSION_ID,
) -> MatchSessionView:
    """A match session: `pending`, `completed` with the ranked homes, or `failed`."""
    view = await gw.buyers.session(gw.pool, caller.organization_id, match_session_id)
    if view is None:
        raise ApiError(
            404, "match_session_not_found", f"No match session {match_session_id} in your organisation."
        )
    return view


@router.get(
    "/v1/buyers/{buyer_id}/preferences",
    response_model=BuyerPreferencesView,
    responses=documented_errors(
        not_found=(404, "buyer_not_found", "No preferences stored for buyer buyer-001 in your organisation.")
    ),
)
async def get_preferences(
    caller: CallerDep,
    gw: GatewayDep,
    buyer_id: str = _BUYER_ID,
) -> BuyerPreferencesView:
    """The buyer's stored preferences (from the last match request or PUT)."""
    stored = await gw.buyers.preferences(gw.pool, caller.organization_id, buyer_id)
    if stored is None:
        raise ApiError(
            404, "buyer_not_found", f"No preferences stored for buyer {buyer_id} in your organisation."
        )
    return BuyerPreferencesView.model_validate(stored)


@router.put(
    "/v1/buyers/{buyer_id}/preferences",
    response_model=BuyerPreferencesView,
    responses=documented_errors(**_PREFERENCE_ERRORS),
)
async def put_preferences(
    body: BuyerPreferences,
    caller: CallerDep,
    gw: GatewayDep,
    buyer_id: str = _BUYER_ID,
) -> BuyerPreferencesView:
    """Replace the buyer's preferences (fields left out are cleared); creates them if none."""
    _check_preferences(body)
    updated_at = await gw.buyers.save_preferences(gw.pool, caller.organization_id, buyer_id, body)
    return BuyerPreferencesView.model_validate(
        {**body.model_dump(), "buyer_id": buyer_id, "updated_at": updated_at}
    )
