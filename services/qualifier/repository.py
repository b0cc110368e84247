"""PostgreSQL adapter of the qualifier: stores completed qualifications."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from jorge_runtime.db import DbConnection
from jorge_runtime.results import QUALIFICATION, notify_result
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
        await conn.execute(
            """INSERT INTO leads (organization_id, lead_id, name, phone, email, message,
                                  property_address, source)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
               ON CONFLICT (organization_id, lead_id) DO NOTHING""",
            organization_id,
            lead.lead_id,
            lead.name,
            lead.phone,
            lead.email,
            lead.message,
            lead.property_address,
            lead.source,
        )
        usage = qualification.usage
        await conn.execute(
            """INSERT INTO qualifications (qualification_id, organization_id, lead_id, status, engine,
                                           result, correlation_id, completed_at, expires_at, model,
                                           input_tokens, output_tokens, cache_read_tokens,
                                           cache_write_tokens, cost_usd, fallback_reason)
               VALUES ($1, $2, $3, 'completed', $4, $5, $6, $7, now() + make_interval(days => $8),
                       $9, $10, $11, $12, $13, $14, $15)
               ON CONFLICT (qualification_id) DO UPDATE
                  SET status = 'completed', engine = EXCLUDED.engine, result = EXCLUDED.result,
                      completed_at = EXCLUDED.completed_at, failure_reason = NULL,
                      model = EXCLUDED.model, input_tokens = EXCLUDED.input_tokens,
                      output_tokens = EXCLUDED.output_tokens,
                      cache_read_tokens = EXCLUDED.cache_read_tokens,
                      cache_write_tokens = EXCLUDED.cache_write_tokens,
                      cost_usd = EXCLUDED.cost_usd, fallback_reason = EXCLUDED.fallback_reason
                WHERE qualifications.organization_id = EXCLUDED.organization_id""",
            qualification_id,
            organization_id,
            lead.lead_id,
            qualification.engine,
            qualification.model_dump(mode="json"),
            correlation_id,
            completed_at,
            self._expires_after_days,
            qualification.model,
            usage.input_tokens if usage else None,
            usage.output_tokens if usage else None,
            usage.cache_read_tokens if usage else None,
            usage.cache_write_tokens if usage else None,
            Decimal(str(usage.cost_usd)) if usage else None,
            qualification.fallback_reason,
        )
        # Wakes a gateway holding POST /v1/leads/qualify?wait=N once this commits.
        await notify_result(conn, QUALIFICATION, qualification_id)
