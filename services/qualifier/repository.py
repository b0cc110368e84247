"""PostgreSQL adapter of the qualifier: stores completed qualifications."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from jorge_runtime.idempotency import CLAIM_CTES, EventLedger
from jorge_runtime.kafka.broker import OutgoingMessage
from jorge_runtime.results import QUALIFICATION, notify_result_sql
from schemas.leads import LeadToQualify
from schemas.qualification import Qualification

# The lead (unless stored: what is stored wins), the completed qualification (created if missing;
# a qualification id of another organisation is left alone) and the gateway's wake-up, all only
# if this delivery claims the event. Parameters after the claim's seven: $8-$15 the lead,
# $16-$28 the qualification.
_SAVE_COMPLETED_ONCE = f"""
WITH {CLAIM_CTES}, lead AS (
    INSERT INTO leads (organization_id, lead_id, name, phone, email, message, property_address, source)
    SELECT $8::text, $9::text, $10::text, $11::text, $12::text, $13::text, $14::text, $15::text
      FROM claimed
    ON CONFLICT (organization_id, lead_id) DO NOTHING
), qualification AS (
    INSERT INTO qualifications (qualification_id, organization_id, lead_id, status, engine,
                                result, correlation_id, completed_at, expires_at, model,
                                input_tokens, output_tokens, cache_read_tokens,
                                cache_write_tokens, cost_usd, fallback_reason)
    SELECT $16::text, $8::text, $9::text, 'completed', $17::text, $18::jsonb, $19::text,
           $20::timestamptz, now() + make_interval(days => $21::int), $22::text, $23::int,
           $24::int, $25::int, $26::int, $27::numeric, $28::text
      FROM claimed
    ON CONFLICT (qualification_id) DO UPDATE
       SET status = 'completed', engine = EXCLUDED.engine, result = EXCLUDED.result,
           completed_at = EXCLUDED.completed_at, failure_reason = NULL,
           model = EXCLUDED.model, input_tokens = EXCLUDED.input_tokens,
           output_tokens = EXCLUDED.output_tokens,
           cache_read_tokens = EXCLUDED.cache_read_tokens,
           cache_write_tokens = EXCLUDED.cache_write_tokens,
           cost_usd = EXCLUDED.cost_usd, fallback_reason = EXCLUDED.fallback_reason
     WHERE qualifications.organization_id = EXCLUDED.organization_id
)
SELECT count(*) = 1 FROM claimed, LATERAL {notify_result_sql(QUALIFICATION, "$16")}"""  # noqa: S608  constant SQL, values as $n placeholders


class QualificationRepository:
    """Writes a qualification's result; safe to call for a record the gateway never committed."""

    def __init__(self, expires_after_days: int) -> None:
        self._expires_after_days = expires_after_days

    async def save_completed_once(
        self,
        ledger: EventLedger,
        event_id: uuid.UUID,
        messages: list[OutgoingMessage],
        *,
        organization_id: str,
        qualification_id: str,
        lead: LeadToQualify,
        qualification: Qualification,
        correlation_id: str,
        completed_at: datetime,
    ) -> bool:
        """In one statement: claim the event with its messages, store the lead if missing and the
        completed qualification, and wake a gateway holding POST /v1/leads/qualify?wait=N.
        False, with nothing written, when another delivery of the event claimed it first."""
        usage = qualification.usage
        return await ledger.claim_and_write(
            event_id,
            messages,
            _SAVE_COMPLETED_ONCE,
            organization_id, lead.lead_id, lead.name, lead.phone, lead.email, lead.message,
            lead.property_address, lead.source,
            qualification_id, qualification.engine, qualification.model_dump(mode="json"),
            correlation_id, completed_at, self._expires_after_days, qualification.model,
            usage.input_tokens if usage else None,
            usage.output_tokens if usage else None,
            usage.cache_read_tokens if usage else None,
            usage.cache_write_tokens if usage else None,
            Decimal(str(usage.cost_usd)) if usage else None,
            qualification.fallback_reason,
        )  # fmt: skip
