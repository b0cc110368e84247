"""PostgreSQL adapter of follow-ups: plans, steps (claimed with FOR UPDATE SKIP LOCKED and a
lease), the organisation's cadence and the contact -> lead mapping GHL's webhooks need."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from jorge_runtime.db import DbConnection
from jorge_runtime.idempotency import stage_outbox
from jorge_runtime.kafka.broker import OutgoingMessage
from services.crm_sync.follow_ups.domain import Cadence
from services.crm_sync.names import FOLLOW_UP_CONSUMER

#: The outbox's consumer column of follow-up events.
OUTBOX_CONSUMER = FOLLOW_UP_CONSUMER


@dataclass(frozen=True, slots=True)
class ClaimedStep:
    """A due step this replica holds until its lease expires."""

    id: uuid.UUID
    organization_id: str
    lead_id: str
    step_number: int
    steps_total: int
    offset_days: float
    due_at: datetime
    temperature: str
    attempts: int
    task_started: bool
    task_id: str | None
    workflow_added: bool


#: A plan and its steps (offsets $6, due times $7, numbered from 1) unless the lead has a plan:
#: true when stored. The steps' CTE reads ``plan``, so it inserts only when the plan was.
_CREATE_FIRST_PLAN = """
WITH plan AS (
    INSERT INTO follow_up_plans (organization_id, lead_id, temperature, status, source_event_id, topic_prefix)
    VALUES ($1, $2, $3, 'active', $4, $5)
    ON CONFLICT (organization_id, lead_id) DO NOTHING
    RETURNING organization_id, lead_id
), steps AS (
    INSERT INTO follow_up_steps (id, organization_id, lead_id, step_number, offset_days, due_at, status,
                                 next_attempt_at)
    SELECT gen_random_uuid(), plan.organization_id, plan.lead_id, s.step_number, s.offset_days, s.due_at,
           'pending', s.due_at
      FROM plan,
           unnest($6::float8[], $7::timestamptz[]) WITH ORDINALITY AS s(offset_days, due_at, step_number)
)
SELECT EXISTS (SELECT 1 FROM plan)"""


class FollowUpRepository:
    """Every query of the follow-up engine."""

    def __init__(self, pool: asyncpg.Pool, topic_prefix: str = "") -> None:
        self._pool = pool
        self._prefix = topic_prefix

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    async def cadence(self, organization_id: str, default_days: tuple[float, ...]) -> Cadence:
        row = await self._pool.fetchrow(
            "SELECT * FROM follow_up_settings WHERE organization_id = $1", organization_id
        )
        return Cadence.from_row(dict(row) if row else None, default_days)

    async def create_plan(
        self,
        organization_id: str,
        lead_id: str,
        temperature: str,
        source_event_id: uuid.UUID,
        steps: list[tuple[float, datetime]],
    ) -> str | None:
        """Store the plan and its steps: "created", "restarted" (a new qualification of a lead
        whose last plan completed or stopped, except on an opt-out; its old steps go, their GHL
        tasks stay in GHL), or None: the same event again, a plan still active or paused, or
        one an operator cancelled or the lead opted out of."""
        # The usual case, a lead's first plan: the plan and its steps in one statement.
        if await self._pool.fetchval(
            _CREATE_FIRST_PLAN,
            organization_id,
            lead_id,
            temperature,
            source_event_id,
            self._prefix,
            [offset for offset, _ in steps],
            [due for _, due in steps],
        ):
            return "created"
        # The lead has a plan: restart it if it ended, in a transaction (its old steps go).
        async with self._pool.acquire() as conn, conn.transaction():
            inserted = await conn.fetchval(
                """INSERT INTO follow_up_plans
                          (organization_id, lead_id, temperature, status, source_event_id, topic_prefix)
                   VALUES ($1, $2, $3, 'active', $4, $5)
                   ON CONFLICT (organization_id, lead_id) DO UPDATE
                      SET temperature = EXCLUDED.temperature, status = 'active', stop_reason = NULL,
                          source_event_id = EXCLUDED.source_event_id,
                          topic_prefix = EXCLUDED.topic_prefix, created_at = now(), updated_at = now()
                    WHERE follow_up_plans.source_event_id <> EXCLUDED.source_event_id
                      AND (follow_up_plans.status = 'completed'
                           OR (follow_up_plans.status = 'stopped'
                               AND follow_up_plans.stop_reason IS DISTINCT FROM 'opted_out'))
                   RETURNING xmax = 0""",  # true: inserted; false: an ended plan restarted
                organization_id,
                lead_id,
                temperature,
                source_event_id,
                self._prefix,
            )
            if inserted is None:
                return None
            if not inserted:
                await conn.execute(
                    "DELETE FROM follow_up_steps WHERE organization_id = $1 AND lead_id = $2",
                    organization_id,
                    lead_id,
                )
            await conn.executemany(
                """INSERT INTO follow_up_steps (id, organization_id, lead_id, step_number, offset_days,
                                               due_at, status, next_attempt_at)
                   VALUES ($1, $2, $3, $4, $5, $6, 'pending', $6)""",
                [
                    (uuid.uuid4(), organization_id, lead_id, n, offset, due)
                    for n, (offset, due) in enumerate(steps, start=1)
                ],
            )
            return "created" if inserted else "restarted"

    async def claim(self, limit: int, lease_seconds: float) -> list[ClaimedStep]:
        """Due steps of active plans that nobody holds, leased to this replica."""
        rows = await self._pool.fetch(
            """WITH due AS (
                   SELECT s.id FROM follow_up_steps s
                     JOIN follow_up_plans p USING (organization_id, lead_id)
                    WHERE s.status = 'pending' AND s.next_attempt_at <= now() AND p.status = 'active'
                      AND p.topic_prefix = $3
                      AND (s.lease_expires_at IS NULL OR s.lease_expires_at < now())
                    ORDER BY s.next_attempt_at LIMIT $1
                      FOR UPDATE OF s SKIP LOCKED)
               UPDATE follow_up_steps s
                  SET lease_expires_at = now() + make_interval(secs => $2::float8), attempts = s.attempts + 1
                 FROM due, follow_up_plans p
                WHERE s.id = due.id AND p.organization_id = s.organization_id AND p.lead_id = s.lead_id
            RETURNING s.*, p.temperature,
                      (SELECT count(*) FROM follow_up_steps x
                        WHERE x.organization_id = s.organization_id AND x.lead_id = s.lead_id)
                      AS steps_total""",
            limit,
            lease_seconds,
            self._prefix,
        )
        return [
            ClaimedStep(
                id=r["id"],
                organization_id=r["organization_id"],
                lead_id=r["lead_id"],
                step_number=r["step_number"],
                steps_total=int(r["steps_total"]),
                offset_days=float(r["offset_days"]),
                due_at=r["due_at"],
                temperature=r["temperature"],
                attempts=r["attempts"],
                task_started=r["task_started"],
                task_id=r["task_id"],
                workflow_added=r["workflow_added"],
            )
            for r in rows
        ]

    async def still_pending(self, step_id: uuid.UUID) -> bool:
        """Whether the step is still pending in an active plan (a stop may have landed since the
        claim)."""
        status = await self._pool.fetchval(
            """SELECT s.status FROM follow_up_steps s
                 JOIN follow_up_plans p USING (organization_id, lead_id)
                WHERE s.id = $1 AND p.status = 'active'""",
            step_id,
        )
        return bool(status == "pending")

    async def task_started(self, step_id: uuid.UUID) -> None:
        await self._pool.execute("UPDATE follow_up_steps SET task_started = true WHERE id = $1", step_id)

    async def task_created(self, step_id: uuid.UUID, task_id: str) -> None:
        await self._pool.execute(
            "UPDATE follow_up_steps SET task_started = true, task_id = $2 WHERE id = $1", step_id, task_id
        )

    async def workflow_added(self, step_id: uuid.UUID) -> None:
        await self._pool.execute("UPDATE follow_up_steps SET workflow_added = true WHERE id = $1", step_id)

    async def later(
        self, step_id: uuid.UUID, delay_seconds: float, error: str | None, *, counts: bool = True
    ) -> None:
        """Release the step until ``delay_seconds`` from now; an attempt that never reached GHL
        (quiet hours, budget spent) does not count."""
        await self._pool.execute(
            """UPDATE follow_up_steps
                  SET next_attempt_at = now() + make_interval(secs => $2::float8), lease_expires_at = NULL,
                      last_error = coalesce($3, last_error),
                      attempts = CASE WHEN $4 THEN attempts ELSE greatest(attempts - 1, 0) END
                WHERE id = $1""",
            step_id,
            delay_seconds,
            error,
            counts,
        )

    async def plan_is_active(self, conn: DbConnection, organization_id: str, lead_id: str) -> bool:
        """Whether the plan is still active, its row locked until the caller's transaction ends
        (a stop signal arriving meanwhile waits, then finds the step done)."""
        status = await conn.fetchval(
            "SELECT status FROM follow_up_plans WHERE organization_id = $1 AND lead_id = $2 FOR UPDATE",
            organization_id,
            lead_id,
        )
        return bool(status == "active")

    async def finish(
        self, conn: DbConnection, step_id: uuid.UUID, status: str, reason: str | None = None
    ) -> None:
        """Close the step (done, skipped, failed); the plan completes with its last step."""
        row = await conn.fetchrow(
            """UPDATE follow_up_steps
                  SET status = $2, skip_reason = $3, done_at = now(), lease_expires_at = NULL
                WHERE id = $1 AND status = 'pending' RETURNING organization_id, lead_id""",
            step_id,
            status,
            reason,
        )
        if row is None:
            return
        await conn.execute(
            """UPDATE follow_up_plans SET status = 'completed', updated_at = now()
                WHERE organization_id = $1 AND lead_id = $2 AND status = 'active'
                  AND NOT EXISTS (SELECT 1 FROM follow_up_steps
                                   WHERE organization_id = $1 AND lead_id = $2 AND status = 'pending')""",
            row["organization_id"],
            row["lead_id"],
        )

    async def stage(self, conn: DbConnection, message: OutgoingMessage) -> None:
        await stage_outbox(conn, OUTBOX_CONSUMER, message)

    async def stop(self, organization_id: str, lead_id: str, reason: str) -> bool:
        """Stop an active or paused plan with ``reason``; its pending steps are cancelled. False
        when there is no plan to stop (none, or already ended)."""
        async with self._pool.acquire() as conn, conn.transaction():
            stopped = await conn.fetchval(
                """UPDATE follow_up_plans SET status = 'stopped', stop_reason = $3, updated_at = now()
                    WHERE organization_id = $1 AND lead_id = $2 AND status IN ('active', 'paused')
                RETURNING true""",
                organization_id,
                lead_id,
                reason,
            )
            if stopped:
                await conn.execute(
                    """UPDATE follow_up_steps SET status = 'cancelled', lease_expires_at = NULL
                        WHERE organization_id = $1 AND lead_id = $2 AND status = 'pending'""",
                    organization_id,
                    lead_id,
                )
            return bool(stopped)

    async def leads_of_contact(
        self, location_id: str, contact_id: str, organization_id: str | None
    ) -> list[tuple[str, str]]:
        """(organization, lead id) of our people mapped to this GHL contact."""
        rows = await self._pool.fetch(
            """SELECT organization_id, person_id FROM crm_contacts
                WHERE location_id = $1 AND contact_id = $2 AND ($3::text IS NULL OR organization_id = $3)""",
            location_id,
            contact_id,
            organization_id,
        )
        return [(r["organization_id"], r["person_id"]) for r in rows]

    async def overdue(self, grace_seconds: float) -> int:
        """Pending steps of active plans due for longer than ``grace_seconds``."""
        return int(
            await self._pool.fetchval(
                """SELECT count(*) FROM follow_up_steps s
                     JOIN follow_up_plans p USING (organization_id, lead_id)
                    WHERE s.status = 'pending' AND p.status = 'active' AND p.topic_prefix = $2
                      AND s.next_attempt_at < now() - make_interval(secs => $1::float8)""",
                grace_seconds,
                self._prefix,
            )
        )

    async def unpublished(self, older_than_seconds: float) -> list[OutgoingMessage]:
        """Follow-up events staged but never acknowledged by Kafka (a process died meanwhile)."""
        rows = await self._pool.fetch(
            """SELECT message_id, topic, message_key, headers, body FROM outbox
                WHERE consumer = $1 AND published_at IS NULL
                  AND created_at < now() - make_interval(secs => $2::float8)
                ORDER BY created_at LIMIT 100""",
            OUTBOX_CONSUMER,
            older_than_seconds,
        )
        return [
            OutgoingMessage(
                str(r["message_id"]), r["topic"], r["message_key"], bytes(r["body"]), r["headers"]
            )
            for r in rows
        ]

    async def mark_published(self, message_id: str) -> None:
        await self._pool.execute(
            "UPDATE outbox SET published_at = now() WHERE message_id = $1", uuid.UUID(message_id)
        )
