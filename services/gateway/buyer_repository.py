"""The gateway's repository of buyers: their preferences (buyer_preferences, the gateway's own
table) and their match sessions (SQL: jorge_runtime.tables.match_sessions)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jorge_runtime.db import Executor
from jorge_runtime.tables import match_sessions
from schemas.buyers import BuyerMatchRequestedPayload, BuyerPreferences, MatchResults, MatchSessionView
from services.gateway.outbox import ACCEPT_CTES, Accept

# The buyer's preferences and a pending match session, with the request's event.
_OPEN_SESSION = f"""
WITH preferences AS (
    INSERT INTO buyer_preferences (organization_id, buyer_id, document) VALUES ($10, $11, $12)
    ON CONFLICT (organization_id, buyer_id) DO UPDATE SET document = EXCLUDED.document, updated_at = now()
), accepted AS (
    INSERT INTO match_sessions (id, organization_id, buyer_id, status, request, correlation_id)
    VALUES ($13, $10, $11, 'pending', $14, $15)
    RETURNING id
), {ACCEPT_CTES}
SELECT id FROM accepted"""  # noqa: S608  constant SQL, values as $n placeholders


class BuyerRepository:
    """Buyers' preferences and match sessions as the gateway sees them (the matcher writes results)."""

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
        self, accept: Accept, organization_id: str, request: BuyerMatchRequestedPayload, correlation_id: str
    ) -> None:
        """Store the buyer's preferences and a pending match session with the request's event."""
        await accept(
            _OPEN_SESSION,
            organization_id, request.buyer_id, request.preferences.model_dump(mode="json"),
            request.match_session_id, request.model_dump(mode="json"), correlation_id,
        )  # fmt: skip

    async def session(self, conn: Executor, organization_id: str, session_id: str) -> MatchSessionView | None:
        """The session as the API shows it, or None if it is not this organisation's."""
        row = await match_sessions.find(conn, organization_id, session_id)
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
