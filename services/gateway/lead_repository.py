"""PostgreSQL adapter of the gateway: leads and their qualification records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from jorge_runtime.db import DbConnection
from schemas.leads import QualifyLeadRequest, schedule_showing_url


class LeadAlreadyInQualification(Exception):
    """The lead has an open qualification; a second one would race the first."""


@dataclass(frozen=True, slots=True)
class OpenedQualification:
    """The record created for a new qualification."""

    created_at: datetime
    expires_at: datetime
    booking_url_template: str | None  # the organisation's schedule_showing_url template


# The lead and its new qualification in one statement; the partial unique index answers 409.
_OPEN_QUALIFICATION = """
WITH lead AS (
    INSERT INTO leads (organization_id, lead_id, name, phone, email, message, property_address, source)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    ON CONFLICT (organization_id, lead_id) DO UPDATE
       SET name = EXCLUDED.name, phone = EXCLUDED.phone, email = EXCLUDED.email,
           message = EXCLUDED.message, property_address = EXCLUDED.property_address,
           source = EXCLUDED.source, updated_at = now()
    RETURNING organization_id, lead_id
)
INSERT INTO qualifications (qualification_id, organization_id, lead_id, status, correlation_id, expires_at)
SELECT $9, organization_id, lead_id, 'in_progress', $10, now() + make_interval(days => $11) FROM lead
ON CONFLICT (organization_id, lead_id) WHERE status = 'in_progress' DO NOTHING
RETURNING created_at, expires_at,
          (SELECT schedule_showing_url FROM organizations WHERE organization_id = $1) AS booking"""

_CLOSE_STALE = """
UPDATE qualifications SET status = 'failed', failure_reason = 'timed out'
 WHERE organization_id = $1 AND lead_id = $2 AND status = 'in_progress'
   AND created_at < now() - make_interval(secs => $3)"""


class LeadRepository:
    """Leads and qualifications as the gateway sees them (it writes requests, reads results)."""

    def __init__(self, *, stale_after_seconds: int, expires_after_days: int) -> None:
        self._stale_after_seconds = stale_after_seconds
        self._expires_after_days = expires_after_days

    async def open_qualification(
        self,
        conn: DbConnection,
        organization_id: str,
        lead: QualifyLeadRequest,
        qualification_id: str,
        correlation_id: str,
    ) -> OpenedQualification:
        """Upsert the lead and open its qualification, inside the caller's transaction.

        One round trip in the common case. On a conflict, an open qualification older than the
        stale limit (its event was lost or dead-lettered) is closed as failed and the insert
        tried once more, so a lead is never blocked forever.
        """
        arguments = (
            organization_id, lead.lead_id, lead.name, lead.phone, lead.email, lead.message,
            lead.property_address, lead.source, qualification_id, correlation_id, self._expires_after_days,
        )  # fmt: skip
        row = await conn.fetchrow(_OPEN_QUALIFICATION, *arguments)
        if row is None:
            closed = await conn.execute(
                _CLOSE_STALE, organization_id, lead.lead_id, self._stale_after_seconds
            )
            if closed != "UPDATE 0":
                row = await conn.fetchrow(_OPEN_QUALIFICATION, *arguments)
        if row is None:
            raise LeadAlreadyInQualification(lead.lead_id)
        return OpenedQualification(row["created_at"], row["expires_at"], row["booking"])

    async def outcome(
        self, pool: asyncpg.Pool, organization_id: str, qualification_id: str
    ) -> dict[str, Any]:
        """A finished qualification's status and result (the result is None unless completed)."""
        row = await pool.fetchrow(
            """SELECT status, result FROM qualifications
                WHERE qualification_id = $1 AND organization_id = $2""",
            qualification_id,
            organization_id,
        )
        return dict(row) if row is not None else {"status": "in_progress", "result": None}

    async def latest_qualification(
        self, pool: asyncpg.Pool, organization_id: str, lead_id: str
    ) -> dict[str, Any] | None:
        """The lead's most recent qualification record, or None."""
        row = await pool.fetchrow(
            """SELECT qualification_id, lead_id, status, engine, result, created_at, completed_at,
                      expires_at,
                      (SELECT o.schedule_showing_url FROM organizations o
                        WHERE o.organization_id = q.organization_id) AS booking,
                      (SELECT m.result FROM match_sessions m
                        WHERE m.organization_id = q.organization_id
                          AND m.qualification_id = q.qualification_id AND m.status = 'completed'
                        ORDER BY m.completed_at DESC LIMIT 1) AS matches
                 FROM qualifications q WHERE organization_id = $1 AND lead_id = $2
                ORDER BY created_at DESC LIMIT 1""",
            organization_id,
            lead_id,
        )
        if row is None:
            return None
        record = dict(row)
        record["schedule_showing_url"] = schedule_showing_url(record.pop("booking"), lead_id)
        # The matcher's session for a qualified buyer lead, in the spec's short form.
        record["recommended_properties"] = [
            {
                "id": m["property"]["id"],
                "address": m["property"]["address"],
                "price": m["property"]["price"],
                "beds": m["property"].get("bedrooms"),
                "match_score": m["match_score"],
            }
            for m in (record.pop("matches") or {}).get("matches", [])
        ]
        return record
