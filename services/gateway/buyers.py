"""Gateway routes for /v1/buyers: store a buyer's search, hand it to the matcher, read results.

The gateway never matches: it stores the preferences and a pending match session and
stages BuyerMatchRequested in one transaction (publishing.store_and_publish), then publishes it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Path, Request

from jorge_runtime.db import DbConnection, Executor
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
    MatchResults,
    MatchSessionView,
    SortBy,
    new_match_session_id,
)
from schemas.topics import BUYER_MATCH_REQUESTED
from services.gateway.dependencies import Gateway, authenticated_caller, gateway
from services.gateway.errors import BUS_DOWN, ApiError, documented_errors
from services.gateway.publishing import store_and_publish
from services.gateway.results import WAIT_QUERY, accepted_or_result
from services.gateway.tenancy import Caller

router = APIRouter(tags=["buyers"])

_BUYER_ID = Path(pattern=BUYER_ID_PATTERN, examples=["buyer-001"])
_SESSION_ID = Path(pattern=MATCH_SESSION_ID_PATTERN, examples=["match-3f9c0a1b2c3d4e5f607182"])
_PREFERENCE_ERRORS = {
    "invalid_budget": (400, "invalid_budget", "budget_min (900000) is above budget_max (800000)."),
    "invalid_location": (400, "invalid_location", "Give latitude and longitude together, or neither."),
}


class BuyerStore:
    """PostgreSQL adapter: buyers' preferences and match sessions (the matcher writes results)."""

    async def save_preferences(
        self, conn: Executor, organization_id: str, buyer_id: str, preferences: BuyerPreferences
    ) -> datetime:
        """Insert or replace the buyer's preferences; the new updated_at."""
        updated_at: datetime = await conn.fetchval(
            """INSERT INTO buyer_preferences (organization_id, buyer_id, document) VALUES ($1, $2, $3)
               ON CONFLICT (organization_id, buyer_id)
               DO UPDATE SET document = EXCLUDED.document, updated_at = now()
               RETURNING updated_at""",
            organization_id,
            buyer_id,
            preferences.model_dump(mode="json"),
        )
        return updated_at

    async def preferences(self, conn: Executor, organization_id: str, buyer_id: str) -> dict[str, Any] | None:
        """The buyer's stored preferences with buyer_id and updated_at, or None."""
        row = await conn.fetchrow(
            """SELECT document, updated_at FROM buyer_preferences
                WHERE organization_id = $1 AND buyer_id = $2""",
            organization_id,
            buyer_id,
        )
        if row is None:
            return None
        return {**row["document"], "buyer_id": buyer_id, "updated_at": row["updated_at"]}

    async def open_session(
        self,
        conn: DbConnection,
        organization_id: str,
        request: BuyerMatchRequestedPayload,
        correlation_id: str,
    ) -> None:
        """Record a pending match session, inside the caller's transaction."""
        await conn.execute(
            """INSERT INTO match_sessions (id, organization_id, buyer_id, status, request, correlation_id)
               VALUES ($1, $2, $3, 'pending', $4, $5)""",
            request.match_session_id,
            organization_id,
            request.buyer_id,
            request.model_dump(mode="json"),
            correlation_id,
        )

    async def session(self, conn: Executor, organization_id: str, session_id: str) -> MatchSessionView | None:
        """The session as the API shows it, or None if it is not this organisation's."""
        row = await conn.fetchrow(
            """SELECT id, buyer_id, status, result, failure_reason, created_at, completed_at
                 FROM match_sessions WHERE id = $1 AND organization_id = $2""",
            session_id,
            organization_id,
        )
        if row is None:
            return None
        result = MatchResults.model_validate(row["result"]) if row["status"] == "completed" else None
        return MatchSessionView(
            match_session_id=row["id"],
            buyer_id=row["buyer_id"],
            status=row["status"],
            total_matches=result.total_matches if result else None,
            matches=result.matches if result else [],
            next_actions=result.next_actions if result else [],
            failure_reason=row["failure_reason"],
            created_at=row["created_at"],
            completed_at=row["completed_at"],
        )


_store = BuyerStore()


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
    wait: float | None = WAIT_QUERY,
    caller: Caller = Depends(authenticated_caller),
    gw: Gateway = Depends(gateway),
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

    async def write(conn: DbConnection) -> None:
        await _store.save_preferences(conn, caller.organization_id, body.buyer_id, payload.preferences)
        await _store.open_session(conn, caller.organization_id, payload, request.state.request_id)

    await store_and_publish(gw, write, message)
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
        lambda: _store.session(gw.pool, caller.organization_id, session_id),
    )


@router.get(
    "/v1/buyers/match-sessions/{match_session_id}",
    response_model=MatchSessionView,
    responses=documented_errors(
        not_found=(404, "match_session_not_found", "No match session match-… in your organisation.")
    ),
)
async def get_match_session(
    match_session_id: str = _SESSION_ID,
    caller: Caller = Depends(authenticated_caller),
    gw: Gateway = Depends(gateway),
) -> MatchSessionView:
    """A match session: `pending`, `completed` with the ranked homes, or `failed`."""
    view = await _store.session(gw.pool, caller.organization_id, match_session_id)
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
    buyer_id: str = _BUYER_ID,
    caller: Caller = Depends(authenticated_caller),
    gw: Gateway = Depends(gateway),
) -> BuyerPreferencesView:
    """The buyer's stored preferences (from the last match request or PUT)."""
    stored = await _store.preferences(gw.pool, caller.organization_id, buyer_id)
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
    buyer_id: str = _BUYER_ID,
    caller: Caller = Depends(authenticated_caller),
    gw: Gateway = Depends(gateway),
) -> BuyerPreferencesView:
    """Replace the buyer's preferences (fields left out are cleared); creates them if none."""
    _check_preferences(body)
    updated_at = await _store.save_preferences(gw.pool, caller.organization_id, buyer_id, body)
    return BuyerPreferencesView.model_validate(
        {**body.model_dump(), "buyer_id": buyer_id, "updated_at": updated_at}
    )
