"""PostgreSQL adapter of the matcher: stores match sessions and wakes waiting gateways."""

from __future__ import annotations

from datetime import datetime

from jorge_runtime.db import DbConnection
from jorge_runtime.results import MATCH_SESSION, notify_result
from schemas.buyers import BuyerMatchRequestedPayload, MatchResults


class MatchSessionRepository:
    """Writes a session's result; safe for a session whose gateway transaction never committed."""

    async def save_completed(
        self,
        conn: DbConnection,
        *,
        organization_id: str,
        request: BuyerMatchRequestedPayload,
        result: MatchResults,
        correlation_id: str,
        completed_at: datetime,
        qualification_id: str | None = None,
    ) -> None:
        """Store the completed session (creating it if missing) and notify, in the caller's
        transaction. A session id of another organisation is left alone."""
        await conn.execute(
            """INSERT INTO match_sessions (id, organization_id, buyer_id, status, request, result,
                                           correlation_id, completed_at, qualification_id)
               VALUES ($1, $2, $3, 'completed', $4, $5, $6, $7, $8)
               ON CONFLICT (id) DO UPDATE
                  SET status = 'completed', result = EXCLUDED.result, failure_reason = NULL,
                      completed_at = EXCLUDED.completed_at
                WHERE match_sessions.organization_id = EXCLUDED.organization_id""",
            request.match_session_id,
            organization_id,
            request.buyer_id,
            request.model_dump(mode="json"),
            result.model_dump(mode="json"),
            correlation_id,
            completed_at,
            qualification_id,
        )
        await notify_result(conn, MATCH_SESSION, request.match_session_id)
