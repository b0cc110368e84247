"""The ``match_sessions`` table: a buyer's match request and the matcher's ranked homes.

Writers: the gateway (a pending session with the request) and the matcher (the result; also the
session, if the gateway's transaction never committed: in one statement with its event claim,
in services/matcher/repository.py). Readers: the gateway (the session, and
a qualification's recommended homes, read with the qualification in ``tables.leads``).
"""

from __future__ import annotations

import asyncpg

from jorge_runtime.db import DbConnection, Executor
from schemas.buyers import BuyerMatchRequestedPayload

#: The status of a session by id (for a waiting request: anything but pending is final).
STATUS_BY_ID = "SELECT status FROM match_sessions WHERE id = $1"


async def open_pending(
    conn: DbConnection, organization_id: str, request: BuyerMatchRequestedPayload, correlation_id: str
) -> None:
    """Record a pending match session."""
    await conn.execute(
        """INSERT INTO match_sessions (id, organization_id, buyer_id, status, request, correlation_id)
           VALUES ($1, $2, $3, 'pending', $4, $5)""",
        request.match_session_id,
        organization_id,
        request.buyer_id,
        request.model_dump(mode="json"),
        correlation_id,
    )


async def find(conn: Executor, organization_id: str, session_id: str) -> asyncpg.Record | None:
    """The session's id, buyer, status, result, failure and times, or None if it is not this
    organisation's."""
    return await conn.fetchrow(
        """SELECT id, buyer_id, status, result, failure_reason, created_at, completed_at
             FROM match_sessions WHERE id = $1 AND organization_id = $2""",
        session_id,
        organization_id,
    )
