"""`jorge status`'s CRM section: the GHL credential problems an operator must act on (dead
letters of a bad token or a missing scope, events kept for organisations without credentials,
OAuth refreshes GHL refused), each with what to do."""

from __future__ import annotations

from typing import Any

import asyncpg

from services.crm_sync.ghl.remedies import REFRESH_FAILED, WAITING, remedy

CREDENTIAL_REASONS = ["ghl_unauthorized", "ghl_scope_missing", "crm_credentials_unreadable"]


async def crm_problems(database_url: str) -> list[dict[str, Any]]:
    """One entry per organisation and problem: ``problem``, ``organization_id``, ``count``, ``do``."""
    conn = await asyncpg.connect(database_url, timeout=5)
    try:
        letters = await conn.fetch(
            """SELECT reason, organization_id, count(*) AS n FROM crm_dead_letters
                WHERE replayed_at IS NULL AND discarded_at IS NULL AND reason = ANY($1)
                GROUP BY 1, 2 ORDER BY 1, 2""",
            CREDENTIAL_REASONS,
        )
        waiting = await conn.fetch(
            "SELECT organization_id, count(*) AS n FROM crm_waiting_events GROUP BY 1 ORDER BY 1"
        )
        refused = await conn.fetch(
            "SELECT organization_id FROM crm_credentials WHERE refresh_error IS NOT NULL ORDER BY 1"
        )
    finally:
        await conn.close()
    problems = [
        {
            "problem": r["reason"],
            "organization_id": r["organization_id"],
            "count": r["n"],
            "do": remedy(r["reason"]),
        }
        for r in letters
    ]
    problems += [
        {
            "problem": "oauth_refresh_refused",
            "organization_id": r["organization_id"],
            "count": 1,
            "do": REFRESH_FAILED,
        }
        for r in refused
    ]
    problems += [
        {
            "problem": "waiting_for_credentials",
            "organization_id": r["organization_id"],
            "count": r["n"],
            "do": WAITING,
        }
        for r in waiting
    ]
    return problems
