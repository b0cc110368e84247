"""PostgreSQL adapter of the matcher: stores match sessions and wakes waiting gateways."""

from __future__ import annotations

from datetime import datetime

from jorge_runtime.db import DbConnection
from jorge_runtime.results import MATCH_SESSION, notify_result
from jorge_runtime.tables import match_sessions
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
        await match_sessions.save_completed(
            conn,
            organization_id=organization_id,
            request=request,
            result=result,
            correlation_id=correlation_id,
            completed_at=completed_at,
            qualification_id=qualification_id,
        )
        await notify_result(conn, MATCH_SESSION, request.match_session_id)
