"""The ``match_sessions`` table: a buyer's match request and the matcher's ranked homes.

Writers: the gateway (a pending session with the request, in one statement with its event:
services/gateway/buyer_repository.py) and the matcher (the result; also the session, if the
gateway's statement never ran: in one statement with its event claim, in
services/matcher/repository.py). Readers: the gateway (the session, and
a qualification's recommended homes, read with the qualification in ``tables.leads``).
"""

from __future__ import annotations

import asyncpg

from jorge_runtime.db import Executor

#: The status of a session by id (for a waiting request: anything but pending is final).
STATUS_BY_ID = "SELECT status FROM match_sessions WHERE id = $1"


async def find(conn: Executor, organization_id: str, session_id: str) -> asyncpg.Record | None:
    """The session's id, buyer, status, result, failure and times, or None if it is not this
    organisation's."""
    return await conn.fetchrow(
        """SELECT id, buyer_id, status, result, failure_reason, created_at, completed_at
             FROM match_sessions WHERE id = $1 AND organization_id = $2""",
        session_id,
        organization_id,
    )
