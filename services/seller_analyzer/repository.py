"""PostgreSQL adapter of the seller analyzer: stores analyses and wakes waiting gateways."""

from __future__ import annotations

import uuid
from datetime import datetime

from jorge_runtime.idempotency import CLAIM_CTES, EventLedger
from jorge_runtime.kafka.broker import OutgoingMessage
from jorge_runtime.results import SELLER_ANALYSIS, notify_result_sql
from schemas.sellers import SellerAnalysisRequestedPayload, SellerAnalysisResult

# The analysis, completed (with its CMA) or failed (with the reason), created if missing (an
# analysis id of another organisation is left alone), and the gateway's wake-up, only if this
# delivery claims the event. Parameters after the claim's seven: $8-$16.
_SAVE_OUTCOME_ONCE = f"""
WITH {CLAIM_CTES}, analysis AS (
    INSERT INTO seller_analyses (id, organization_id, seller_id, status, request, result,
                                 failure_reason, correlation_id, completed_at)
    SELECT $8::text, $9::text, $10::text, $11::text, $12::jsonb, $13::jsonb, $14::text, $15::text,
           $16::timestamptz
      FROM claimed
    ON CONFLICT (id) DO UPDATE
       SET status = EXCLUDED.status, result = EXCLUDED.result,
           failure_reason = EXCLUDED.failure_reason, completed_at = EXCLUDED.completed_at
     WHERE seller_analyses.organization_id = EXCLUDED.organization_id
)
SELECT count(*) = 1 FROM claimed, LATERAL {notify_result_sql(SELLER_ANALYSIS, "$8")}"""  # noqa: S608  constant SQL, values as $n placeholders


class SellerAnalysisRepository:
    """Writes an analysis's outcome; safe for an analysis whose gateway transaction never committed."""

    async def save_once(
        self,
        ledger: EventLedger,
        event_id: uuid.UUID,
        messages: list[OutgoingMessage],
        *,
        organization_id: str,
        request: SellerAnalysisRequestedPayload,
        result: SellerAnalysisResult | None,
        failure_reason: str | None,
        correlation_id: str,
        completed_at: datetime,
    ) -> bool:
        """In one statement: claim the event with its messages, store the analysis as completed
        or failed and wake a gateway holding a waiting request. False, with nothing written,
        when another delivery of the event claimed it first."""
        return await ledger.claim_and_write(
            event_id,
            messages,
            _SAVE_OUTCOME_ONCE,
            request.analysis_id, organization_id, request.seller_id,
            "completed" if result is not None else "failed", request.model_dump(mode="json"),
            result.model_dump(mode="json") if result is not None else None, failure_reason,
            correlation_id, completed_at,
        )  # fmt: skip
