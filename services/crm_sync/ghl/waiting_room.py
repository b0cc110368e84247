"""Events kept for organisations without GHL credentials, released once credentials exist.

An organisation with neither a crm_credentials row nor the global token (GHL_ORGANIZATION) has
nowhere to sync to: its events are stored in crm_waiting_events (the event is then committed,
nothing is lost). Every replica checks every ``interval`` seconds: the events of organisations
that now have credentials are republished to the first delay topic, due now, as attempt 1 (the
normal path then writes them once), and deleted in the same transaction; the gauge
``jorge_crm_events_waiting_for_credentials`` reads how many still wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable

import asyncpg

from jorge_runtime.kafka.broker import KafkaPublisher, OutgoingMessage, PublishFailed
from jorge_runtime.observability.metrics import CRM_WAITING_FOR_CREDENTIALS
from schemas.topics import CRM_RETRY_TOPICS, TopicNames
from services.crm_sync.ghl.retry_schedule import ATTEMPT_HEADER, DUE_AT_HEADER, LANE_HEADER

log = logging.getLogger(__name__)

#: Events released per organisation and round (the rest follow in the next rounds).
RELEASE_BATCH = 500


class WaitingRoom:
    """Park events of organisations without credentials; release them when they have some."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        publisher: KafkaPublisher,
        topics: TopicNames,
        has_credentials: Callable[[str], Awaitable[bool]],
        *,
        interval_seconds: float = 30.0,
    ) -> None:
        self._pool = pool
        self._publisher = publisher
        self._topic = topics(CRM_RETRY_TOPICS[0])
        self._has_credentials = has_credentials
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None

    async def park(
        self,
        event_id: str,
        organization_id: str,
        event_type: str,
        lane: str,
        key: str | None,
        headers: dict[str, str],
        body: bytes,
    ) -> None:
        """Keep the event (a redelivery of one already kept changes nothing)."""
        clean = {k: v for k, v in headers.items() if not k.startswith(("crm-", "dlq-"))}
        status = await self._pool.execute(
            """INSERT INTO crm_waiting_events
                      (event_id, organization_id, event_type, lane, message_key, headers, body)
               VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7) ON CONFLICT (event_id) DO NOTHING""",
            event_id,
            organization_id,
            event_type,
            lane,
            key,
            json.dumps(clean),
            body,
        )
        if status == "INSERT 0 1":
            CRM_WAITING_FOR_CREDENTIALS.inc()

    async def release(self) -> int:
        """Republish the events of organisations that have credentials now; how many."""
        released = 0
        organizations = await self._pool.fetch("SELECT DISTINCT organization_id FROM crm_waiting_events")
        for row in organizations:
            organization = row["organization_id"]
            if not await self._has_credentials(organization):
                continue
            released += await self._release(organization)
        await self.measure()
        return released

    async def _release(self, organization: str) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            # Locked rows belong to another replica releasing them right now.
            rows = await conn.fetch(
                """SELECT event_id, lane, message_key, headers, body FROM crm_waiting_events
                    WHERE organization_id = $1 ORDER BY created_at LIMIT $2
                      FOR UPDATE SKIP LOCKED""",
                organization,
                RELEASE_BATCH,
            )
            now_ms = str(int(time.time() * 1000))
            for row in rows:
                headers = {
                    **json.loads(row["headers"]),
                    ATTEMPT_HEADER: "1",
                    DUE_AT_HEADER: now_ms,
                    LANE_HEADER: row["lane"],
                }
                message = OutgoingMessage(
                    str(row["event_id"]), self._topic, row["message_key"], bytes(row["body"]), headers
                )
                await self._publisher.publish(message)
            # Deleted only once Kafka acknowledged every one: a failure keeps them all.
            await conn.execute(
                "DELETE FROM crm_waiting_events WHERE event_id = ANY($1::uuid[])",
                [row["event_id"] for row in rows],
            )
        if rows:
            log.info(
                "GHL credentials found: waiting events released",
                extra={"organization_id": organization, "events": len(rows)},
            )
        return len(rows)

    async def measure(self) -> int:
        """Set the gauge from the table; the number of events still waiting."""
        waiting = int(await self._pool.fetchval("SELECT count(*) FROM crm_waiting_events"))
        CRM_WAITING_FOR_CREDENTIALS.set(waiting)
        return waiting

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="crm_sync-waiting-room")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self.release()
            except (TimeoutError, OSError, asyncpg.PostgresError, PublishFailed) as error:
                log.warning(
                    "releasing waiting CRM events failed; tried again later: %s", type(error).__name__
                )
            await asyncio.sleep(self._interval)
