"""The ``seller_analyses`` table: a seller's home to price and the analyzer's CMA.

Writers: the gateway (a pending analysis with the request, in one statement with its event:
services/gateway/seller_repository.py) and the seller analyzer (completed or failed; also the
analysis, if the gateway's statement never ran: in one statement with its event claim, in
services/seller_analyzer/repository.py). Readers: the
gateway, crm_sync (the priced home's address) and the MCP server.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from jorge_runtime.db import Executor

#: The status of an analysis by id (for a waiting request: anything but pending is final).
STATUS_BY_ID = "SELECT status FROM seller_analyses WHERE id = $1"


async def find(conn: Executor, organization_id: str, analysis_id: str) -> asyncpg.Record | None:
    """The analysis's id, seller, status, result, failure and times, or None if it is not this
    organisation's."""
    return await conn.fetchrow(
        """SELECT id, seller_id, status, result, failure_reason, created_at, completed_at
             FROM seller_analyses WHERE id = $1 AND organization_id = $2""",
        analysis_id,
        organization_id,
    )


async def latest_of_seller(conn: Executor, organization_id: str, seller_id: str) -> asyncpg.Record | None:
    """The seller's latest analysis (id, status, result, failure, times), or None."""
    return await conn.fetchrow(
        """SELECT id, status, result, failure_reason, created_at, completed_at
             FROM seller_analyses WHERE organization_id = $1 AND seller_id = $2
            ORDER BY created_at DESC LIMIT 1""",
        organization_id,
        seller_id,
    )


async def stored_request(conn: Executor, organization_id: str, analysis_id: str) -> dict[str, Any] | None:
    """The request the gateway stored for the analysis (the home is its ``property``), or None."""
    request: dict[str, Any] | None = await conn.fetchval(
        "SELECT request FROM seller_analyses WHERE organization_id = $1 AND id = $2",
        organization_id,
        analysis_id,
    )
    return request
