"""PostgreSQL adapter of the matcher: stores match sessions and wakes waiting gateways."""

from __future__ import annotations

import uuid
from datetime import datetime

from jorge_runtime.idempotency import CLAIM_CTES, EventLedger
from jorge_runtime.kafka.broker import OutgoingMessage
from jorge_runtime.results import MATCH_SESSION, notify_result_sql
from schemas.buyers import BuyerMatchRequestedPayload, MatchResults

# The completed session (created if missing; a session id of another organisation is left
# alone) and the gateway's wake-up, only if this delivery claims the event. Parameters after
# the claim's seven: $8-$15.
_SAVE_COMPLETED_ONCE = f"""
WITH {CLAIM_CTES}, session AS (
    INSERT INTO match_sessions (id, organization_id, buyer_id, status, request, result,
                                correlation_id, completed_at, qualification_id)
    SELECT $8::text, $9::text, $10::text, 'completed', $11::jsonb, $12::jsonb, $13::text,
           $14::timestamptz, $15::text
      FROM claimed
    ON CONFLICT (id) DO UPDATE
       SET status = 'completed', result = EXCLUDED.result, failure_reason = NULL,
           completed_at = EXCLUDED.completed_at
     WHERE match_sessions.organization_id = EXCLUDED.organization_id
)
SELECT count(*) = 1 FROM claimed, LATERAL {notify_result_sql(MATCH_SESSION, "$8")}"""  # noqa: S608  constant SQL, values as $n placeholders


class MatchSessionRepository:
    """Writes a session's result; safe for a session whose gateway transaction never committed."""

    async def save_completed_once(
        self,
        ledger: EventLedger,
        event_id: uuid.UUID,
        messages: list[OutgoingMessage],
        *,
        organization_id: str,
        request: BuyerMatchRequestedPayload,
        result: MatchResults,
        correlation_id: str,
        completed_at: datetime,
        qualification_id: str | None = None,
    ) -> bool:
        """In one statement: claim the event with its messages, store the completed session and
        wake a gateway holding a waiting request. False, with nothing written, when another
        delivery of the event claimed it first."""
        return await ledger.claim_and_write(
            event_id,
            messages,
            _SAVE_COMPLETED_ONCE,
            request.match_session_id, organization_id, request.buyer_id, request.model_dump(mode="json"),
            result.model_dump(mode="json"), correlation_id, completed_at, qualification_id,
        )  # fmt: skip
