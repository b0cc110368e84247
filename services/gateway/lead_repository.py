"""The gateway's repository of leads and their qualifications (SQL: jorge_runtime.tables.leads)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from jorge_runtime.db import DbConnection
from jorge_runtime.tables import leads
from schemas.leads import QualifyLeadRequest, schedule_showing_url


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
        opened = (organization_id, lead, qualification_id, correlation_id, self._expires_after_days)
        row = await leads.open_qualification(conn, *opened)
        if row is None and await leads.close_stale_qualification(
            conn, organization_id, lead.lead_id, self._stale_after_seconds
        ):
            row = await leads.open_qualification(conn, *opened)
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
