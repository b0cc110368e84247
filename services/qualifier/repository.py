"""PostgreSQL adapter of the qualifier: stores completed qualifications."""

from __future__ import annotations

from datetime import datetime

from jorge_runtime.db import DbConnection
from jorge_runtime.results import QUALIFICATION, notify_result
from jorge_runtime.tables import leads
from schemas.leads import LeadToQualify
from schemas.qualification import Qualification


class QualificationRepository:
    """Writes a qualification's result; safe to call for a record the gateway never committed."""

    def __init__(self, expires_after_days: int) -> None:
        self._expires_after_days = expires_after_days

    async def save_completed(
        self,
        conn: DbConnection,
        *,
        organization_id: str,
        qualification_id: str,
        lead: LeadToQualify,
        qualification: Qualification,
        correlation_id: str,
        completed_at: datetime,
    ) -> None:
        """Mark the qualification completed with its result, creating the rows if missing."""
        await leads.insert_lead_if_missing(conn, organization_id, lead)
        await leads.save_completed_qualification(
            conn,
            organization_id=organization_id,
            qualification_id=qualification_id,
            lead_id=lead.lead_id,
            qualification=qualification,
            correlation_id=correlation_id,
            completed_at=completed_at,
            expires_after_days=self._expires_after_days,
        )
        # Wakes a gateway holding POST /v1/leads/qualify?wait=N once this commits.
        await notify_result(conn, QUALIFICATION, qualification_id)
