"""The ``leads`` and ``qualifications`` tables: a lead and the qualifications made of it.

One module for both because most readers join the two. Writers: the gateway (the lead and its
open qualification, with the request's event in one statement: services/gateway/lead_repository.py),
the qualifier (the result; also the lead, if the gateway's statement never ran: in one statement
with its event claim, so that statement lives in services/qualifier/repository.py) and its
backfill. Readers: the gateway, crm_sync (a
person's contact details), the qualifier's backfill and the MCP server.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from jorge_runtime.db import Executor

_CLOSE_STALE = """
UPDATE qualifications SET status = 'failed', failure_reason = 'timed out'
 WHERE organization_id = $1 AND lead_id = $2 AND status = 'in_progress'
   AND created_at < now() - make_interval(secs => $3)"""

_LATEST_FOR_API = """
SELECT qualification_id, lead_id, status, engine, result, created_at, completed_at, expires_at,
       (SELECT o.schedule_showing_url FROM organizations o
         WHERE o.organization_id = q.organization_id) AS booking,
       (SELECT m.result FROM match_sessions m
         WHERE m.organization_id = q.organization_id
           AND m.qualification_id = q.qualification_id AND m.status = 'completed'
         ORDER BY m.completed_at DESC LIMIT 1) AS matches
  FROM qualifications q WHERE organization_id = $1 AND lead_id = $2
 ORDER BY created_at DESC LIMIT 1"""

_LATEST_WITH_LEAD = """
SELECT q.qualification_id, q.status, q.engine, q.model, q.result, q.created_at,
       q.completed_at, l.name, l.message, l.source
  FROM qualifications q JOIN leads l USING (organization_id, lead_id)
 WHERE q.organization_id = $1 AND q.lead_id = $2
 ORDER BY q.created_at DESC LIMIT 1"""

_LATEST_COMPLETED_PER_LEAD = """
SELECT DISTINCT ON (q.organization_id, q.lead_id)
       q.organization_id, q.lead_id, q.engine, l.name, l.phone, l.email, l.message,
       l.property_address, l.source
  FROM qualifications q JOIN leads l USING (organization_id, lead_id)
 WHERE q.status = 'completed' AND ($1::text IS NULL OR q.organization_id = $1)
 ORDER BY q.organization_id, q.lead_id, q.created_at DESC"""

#: The status of a qualification by id (for a waiting request: anything but in_progress is final).
STATUS_BY_ID = "SELECT status FROM qualifications WHERE qualification_id = $1"


async def close_stale_qualification(
    conn: Executor, organization_id: str, lead_id: str, stale_after_seconds: int
) -> bool:
    """Fail the lead's open qualification if it is older than the limit; True if one was closed."""
    closed = await conn.execute(_CLOSE_STALE, organization_id, lead_id, stale_after_seconds)
    return bool(closed != "UPDATE 0")


async def find_lead(conn: Executor, organization_id: str, lead_id: str) -> asyncpg.Record | None:
    """The stored lead (the fields of ``LeadToQualify``), or None."""
    return await conn.fetchrow(
        """SELECT lead_id, name, phone, email, message, property_address, source
             FROM leads WHERE organization_id = $1 AND lead_id = $2""",
        organization_id,
        lead_id,
    )


async def qualification_outcome(
    conn: Executor, organization_id: str, qualification_id: str
) -> asyncpg.Record | None:
    """A qualification's status and result, or None if it is not this organisation's."""
    return await conn.fetchrow(
        "SELECT status, result FROM qualifications WHERE qualification_id = $1 AND organization_id = $2",
        qualification_id,
        organization_id,
    )


async def latest_qualification(conn: Executor, organization_id: str, lead_id: str) -> asyncpg.Record | None:
    """The lead's latest qualification as the API shows it, with the organisation's booking URL
    template (``booking``) and the result of its completed match session (``matches``)."""
    return await conn.fetchrow(_LATEST_FOR_API, organization_id, lead_id)


async def latest_qualification_with_lead(
    conn: Executor, organization_id: str, lead_id: str
) -> asyncpg.Record | None:
    """The lead's latest qualification with the lead's name, message and source, or None."""
    return await conn.fetchrow(_LATEST_WITH_LEAD, organization_id, lead_id)


async def latest_completed_per_lead(conn: Executor, organization_id: str | None) -> list[Any]:
    """Every lead (of one organisation, or all) with its latest completed qualification's engine."""
    return list(await conn.fetch(_LATEST_COMPLETED_PER_LEAD, organization_id))


async def has_qualification_from(
    conn: Executor, organization_id: str, lead_id: str, correlation_id: str
) -> bool:
    """Whether the lead has a qualification stored under this correlation id."""
    return bool(
        await conn.fetchval(
            """SELECT 1 FROM qualifications
                WHERE organization_id = $1 AND lead_id = $2 AND correlation_id = $3""",
            organization_id,
            lead_id,
            correlation_id,
        )
    )
