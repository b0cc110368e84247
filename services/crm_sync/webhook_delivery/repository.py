"""PostgreSQL adapter of the delivery engine: fan-out, claims with leases, attempt records.

A claim never holds a transaction open during HTTP: it stamps the delivery with a lease token
and expiry and commits. The answer is recorded only if the token still matches; a lease that
expired belongs to a dead process and is taken over by the next claim (same webhook-id).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from jorge_runtime.db import DbConnection, Executor
from jorge_runtime.idempotency import claim_unpublished_outbox, mark_outbox_published, stage_outbox
from jorge_runtime.kafka.broker import OutgoingMessage
from schemas.webhooks import DELIVERY_ID_SQL, RESPONSE_BODY_MAX_BYTES, new_attempt_id

# Endpoints with due work and a free slot, oldest due first; locked so that two replicas never
# count the same endpoint's requests in flight at once (the count is exact, not a guess).
#: Due deliveries within each endpoint's free slots, leased to the caller, an attempt a dead
#: process left interrupted recorded as failed: the function of migration 0027 (two statements
#: in their own snapshots, one round trip).
_CLAIM = "SELECT * FROM claim_webhook_deliveries($1, $2, $3, $4)"

_FINISH_DELIVERY = """
UPDATE webhook_deliveries
   -- A redelivery requested while this attempt was in flight still gets its own attempt.
   SET status = CASE WHEN next_trigger = 'manual' THEN 'pending' ELSE $3 END,
       next_attempt_at = CASE WHEN next_trigger = 'manual' THEN now() ELSE $4 END,
       last_response_code = $5, lease_token = NULL, lease_expires_at = NULL, updated_at = now()
 WHERE id = $1 AND lease_token = $2"""


# The message once per event (its source event id is unique), only if someone subscribes, and a
# due delivery per active subscribed endpoint; the count of deliveries created.
_FAN_OUT = f"""
WITH endpoints AS (
    SELECT id FROM webhook_endpoints
     WHERE organization_id = $2 AND status = 'active' AND $3 = ANY(events)
), message AS (
    INSERT INTO webhook_messages (id, organization_id, event_type, payload, source_event_id, trace_context)
    SELECT $1::text, $2::text, $3::text, $4::jsonb, $5::uuid, $6::jsonb
     WHERE EXISTS (SELECT 1 FROM endpoints)
    ON CONFLICT (source_event_id) DO NOTHING
    RETURNING id
), deliveries AS (
    INSERT INTO webhook_deliveries (id, endpoint_id, message_id, next_attempt_at)
    SELECT {DELIVERY_ID_SQL}, endpoints.id, message.id, now() FROM endpoints CROSS JOIN message
    RETURNING 1
)
SELECT count(*) FROM deliveries"""  # noqa: S608  constant SQL, values as $n placeholders


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery claimed for one attempt, with everything needed to send it."""

    delivery_id: str
    endpoint_id: str
    message_id: str
    organization_id: str
    attempt_number: int
    trigger: str
    interrupted: bool
    previous_claimed_at: datetime | None
    url: str
    max_concurrency: int
    #: The endpoint's secrets as stored, encrypted (jorge_runtime.webhook_secrets opens them).
    sealed_secret: bytes
    sealed_previous_secret: bytes | None
    previous_secret_expires_at: datetime | None
    event_type: str
    payload: dict[str, Any]
    #: The W3C trace context of the event the message was made from (None: a new trace).
    trace_context: dict[str, str] | None = None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Claimed:
        return cls(
            delivery_id=row["id"],
            endpoint_id=row["endpoint_id"],
            message_id=row["message_id"],
            organization_id=row["organization_id"],
            attempt_number=row["attempts"],
            trigger=row["trigger"],
            interrupted=row["interrupted"],
            previous_claimed_at=row["old_claimed_at"],
            url=row["url"],
            max_concurrency=row["max_concurrency"],
            sealed_secret=row["secret_encrypted"],
            sealed_previous_secret=row["previous_secret_encrypted"],
            previous_secret_expires_at=row["previous_secret_expires_at"],
            event_type=row["event_type"],
            payload=row["payload"],
            trace_context=row["trace_context"],
        )


# Successful attempts ($1-$11 are arrays, one element per attempt): stored, their deliveries
# finished if still leased to the caller, their endpoints' failure runs ended. One commit for all.
_RECORD_SUCCESSES = """
WITH done AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::integer[], $4::text[], $5::text[], $6::timestamptz[],
                         $7::integer[], $8::integer[], $9::text[], $10::text[], $11::uuid[])
        AS d(attempt_id, delivery_id, attempt_number, trigger, url, started_at, duration_ms,
             response_status, response_body, endpoint_id, lease_token)
), attempt AS (
    INSERT INTO webhook_attempts (id, delivery_id, attempt_number, trigger, status, url, started_at,
           duration_ms, response_status, response_body, error)
    SELECT attempt_id, delivery_id, attempt_number, trigger, 'succeeded', url, started_at,
           duration_ms, response_status, response_body, NULL FROM done
    ON CONFLICT (delivery_id, attempt_number) DO NOTHING
), endpoint AS (
    UPDATE webhook_endpoints e SET failing_since = NULL, updated_at = now()
      FROM (SELECT DISTINCT endpoint_id FROM done) d
     WHERE e.id = d.endpoint_id AND e.failing_since IS NOT NULL
)
UPDATE webhook_deliveries w
   SET status = CASE WHEN w.next_trigger = 'manual' THEN 'pending' ELSE 'succeeded' END,
       next_attempt_at = CASE WHEN w.next_trigger = 'manual' THEN now() END,
       last_response_code = d.response_status, lease_token = NULL, lease_expires_at = NULL, updated_at = now()
  FROM done d
 WHERE w.id = d.delivery_id AND w.lease_token = d.lease_token"""


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One HTTP request of a delivery, as shown in the delivery's history."""

    attempt_number: int
    trigger: str
    succeeded: bool
    url: str
    started_at: datetime
    duration_ms: int | None
    response_status: int | None
    response_body: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Succeeded:
    """A successful attempt of a claimed delivery, to be recorded (``record_successes``)."""

    claim: Claimed
    token: uuid.UUID
    attempt: AttemptRecord

    def columns(self) -> tuple[object, ...]:
        """The values of ``_RECORD_SUCCESSES``'s arrays $2-$11, in order."""
        a = self.attempt
        return (
            self.claim.delivery_id, a.attempt_number, a.trigger, a.url, a.started_at, a.duration_ms,
            a.response_status, cap_body(a.response_body), self.claim.endpoint_id, self.token,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class EndpointState:
    """The endpoint as the decision after an attempt needs it (read under lock)."""

    status: str
    failing_since: datetime | None


def cap_body(text: str | None) -> str | None:
    """At most 20 KB of UTF-8, cut on a character boundary."""
    if text is None:
        return None
    raw = text.encode()[:RESPONSE_BODY_MAX_BYTES]
    return raw.decode(errors="ignore")


class DeliveryRepository:
    """Webhook messages, deliveries and attempts as the delivery engine writes them."""

    async def fan_out(
        self,
        db: Executor,
        *,
        organization_id: str,
        event_type: str,
        source_event_id: uuid.UUID,
        message_id: str,
        payload: dict[str, Any],
        trace_context: dict[str, str] | None = None,
    ) -> int:
        """Store the message and a due delivery per active subscribed endpoint, once per event.

        ``trace_context`` (W3C, from ``jorge_runtime.observability.tracing.trace_context``) makes the
        deliveries' attempts part of the event's trace. Returns the number of deliveries created
        (0 when nobody subscribes or the event was already fanned out)."""
        # One statement, atomic without a transaction: one round trip instead of five.
        return int(
            await db.fetchval(
                _FAN_OUT,
                message_id,
                organization_id,
                event_type,
                payload,
                source_event_id,
                trace_context or None,
            )
        )

    async def claim(
        self, pool: asyncpg.Pool, *, max_endpoints: int, limit: int, lease_seconds: float
    ) -> tuple[uuid.UUID, list[Claimed]]:
        """Claim up to ``limit`` due deliveries within each endpoint's free slots."""
        token = uuid.uuid4()
        rows = await pool.fetch(_CLAIM, max_endpoints, limit, token, lease_seconds)
        return token, [Claimed.from_row(r) for r in rows]

    async def lock_endpoint(self, conn: DbConnection, endpoint_id: str) -> EndpointState | None:
        """The endpoint's status and failure run, locked until the transaction ends."""
        row = await conn.fetchrow(
            "SELECT status, failing_since FROM webhook_endpoints WHERE id = $1 FOR NO KEY UPDATE",
            endpoint_id,
        )
        return EndpointState(row["status"], row["failing_since"]) if row else None

    async def record_attempt(
        self,
        conn: DbConnection,
        claim: Claimed,
        token: uuid.UUID,
        attempt: AttemptRecord,
        *,
        delivery_status: str,
        next_attempt_at: datetime | None,
    ) -> bool:
        """Store the attempt and the delivery's next state; False if the lease was lost."""
        await conn.execute(
            """INSERT INTO webhook_attempts (id, delivery_id, attempt_number, trigger, status, url,
                   started_at, duration_ms, response_status, response_body, error)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
               ON CONFLICT (delivery_id, attempt_number) DO NOTHING""",
            new_attempt_id(), claim.delivery_id, attempt.attempt_number, attempt.trigger,
            "succeeded" if attempt.succeeded else "failed", attempt.url, attempt.started_at,
            attempt.duration_ms, attempt.response_status, cap_body(attempt.response_body),
            attempt.error,
        )  # fmt: skip
        result = await conn.execute(
            _FINISH_DELIVERY,
            claim.delivery_id,
            token,
            delivery_status,
            next_attempt_at,
            attempt.response_status,
        )
        return result != "UPDATE 0"

    async def record_successes(self, pool: asyncpg.Pool, successes: Sequence[Succeeded]) -> None:
        """The common case, many attempts in one statement: store each attempt, mark its delivery
        succeeded (unless a redelivery was asked meanwhile; not if its lease was lost) and end
        the endpoints' failure runs."""
        await pool.execute(
            _RECORD_SUCCESSES,
            [new_attempt_id() for _ in successes],
            *(list(column) for column in zip(*(s.columns() for s in successes), strict=True)),
        )

    async def update_endpoint(
        self,
        conn: DbConnection,
        endpoint_id: str,
        *,
        failing_since: datetime | None,
        disable_reason: str | None,
    ) -> None:
        """Write the failure run, and disable the endpoint (if active) when a reason is given."""
        await conn.execute(
            """UPDATE webhook_endpoints
                  SET failing_since = $2,
                      disabled_reason = CASE WHEN $3::text IS NOT NULL AND status = 'active' THEN $3::text
                                             ELSE disabled_reason END,
                      status = CASE WHEN $3::text IS NOT NULL AND status = 'active' THEN 'disabled'
                                    ELSE status END,
                      updated_at = now()
                WHERE id = $1""",
            endpoint_id,
            failing_since,
            disable_reason,
        )

    async def stage(self, conn: DbConnection, consumer: str, message: OutgoingMessage) -> None:
        """Put an event in the outbox in the caller's transaction (published after commit)."""
        await stage_outbox(conn, consumer, message)

    async def unpublished(
        self, pool: asyncpg.Pool, consumer: str, older_than_seconds: float
    ) -> list[OutgoingMessage]:
        """Staged events a process died before publishing."""
        return await claim_unpublished_outbox(pool, consumer, older_than_seconds, limit=100)

    async def mark_published(self, pool: asyncpg.Pool, message_id: str) -> None:
        await mark_outbox_published(pool, [message_id])

    async def delivery_exists(self, pool: asyncpg.Pool, delivery_id: str) -> bool:
        """Whether a requested delivery is stored (a request whose write rolled back is not)."""
        return bool(await pool.fetchval("SELECT true FROM webhook_deliveries WHERE id = $1", delivery_id))
