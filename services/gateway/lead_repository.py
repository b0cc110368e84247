"""The gateway's repository of leads and their qualifications (SQL: jorge_runtime.tables.leads,
but for the statement that opens a qualification with the request's event, here)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from jorge_runtime.tables import leads
from schemas.leads import QualifyLeadRequest, schedule_showing_url
from services.gateway.outbox import ACCEPT_CTES, Accept

# The qualification first, the lead only if it was opened: a 409 (the partial unique index
# found an open one) changes nothing, not even the lead's details. The foreign key is checked
# at the end of the statement, when the lead is there.
_OPEN_QUALIFICATION = f"""
WITH accepted AS (
    INSERT INTO qualifications
           (qualification_id, organization_id, lead_id, status, correlation_id, expires_at)
    VALUES ($18, $10, $11, 'in_progress', $19, now() + make_interval(days => $20))
    ON CONFLICT (organization_id, lead_id) WHERE status = 'in_progress' DO NOTHING
    RETURNING created_at, expires_at
), lead AS (
    INSERT INTO leads (organization_id, lead_id, name, phone, email, message, property_address, source)
    SELECT $10, $11, $12, $13, $14, $15, $16, $17 FROM accepted
    ON CONFLICT (organization_id, lead_id) DO UPDATE
       SET name = EXCLUDED.name, phone = EXCLUDED.phone, email = EXCLUDED.email,
           message = EXCLUDED.message, property_address = EXCLUDED.property_address,
           source = EXCLUDED.source, updated_at = now()
), {ACCEPT_CTES}
SELECT created_at, expires_at,
       (SELECT schedule_showing_url FROM organizations WHERE organization_id = $10) AS booking
  FROM accepted"""  # noqa: S608  constant SQL, values as $n placeholders


class LeadAlreadyInQualification(Exception):
    """The lead has an open qualification; a second one would race the first."""


@dataclass(frozen=True, slots=True)
class OpenedQualification:
    """The record created for a new qualification."""

    created_at: datetime
    expires_at: datetime
    booking_url_template: str | None  # the organisation's schedule_showing_url template


class LeadRepository:
    """Leads and qualifications as the gateway sees them (it writes requests, reads results)."""

    def __init__(self, *, stale_after_seconds: int, expires_after_days: int) -> None:
        self._stale_after_seconds = stale_after_seconds
        self._expires_after_days = expires_after_days

    async def open_qualification(
        self,
        accept: Accept,
        pool: asyncpg.Pool,
        organization_id: str,
        lead: QualifyLeadRequest,
        qualification_id: str,
        correlation_id: str,
    ) -> OpenedQualification:
        """Upsert the lead and open its qualification with the request's event (``accept``).

        One statement in the common case. On a conflict, an open qualification older than the
        stale limit (its event was lost or dead-lettered) is closed as failed and the statement
        run once more, so a lead is never blocked forever.
        """
        opened = (
            organization_id, lead.lead_id, lead.name, lead.phone, lead.email, lead.message,
            lead.property_address, lead.source, qualification_id, correlation_id, self._expires_after_days,
        )  # fmt: skip
        row = await accept(_OPEN_QUALIFICATION, *opened)
        if row is None and await leads.close_stale_qualification(
            pool, organization_id, lead.lead_id, self._stale_after_seconds
        ):
            row = await accept(_OPEN_QUALIFICATION, *opened)
        if row is None:
            raise LeadAlreadyInQualification(lead.lead_id)
        return OpenedQualification(row["created_at"], row["expires_at"], row["booking"])

    async def outcome(
        self, pool: asyncpg.Pool, organization_id: str, qualification_id: str
    ) -> dict[str, Any]:
        """A finished qualification's status and result (the result is None unless completed)."""
        row = await leads.qualification_outcome(pool, organization_id, qualification_id)
        return dict(row) if row is not None else {"status": "in_progress", "result": None}

    async def latest_qualification(
        self, pool: asyncpg.Pool, organization_id: str, lead_id: str
    ) -> dict[str, Any] | None:
        """The lead's most recent qualification record, or None."""
        row = await leads.latest_qualification(pool, organization_id, lead_id)
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
