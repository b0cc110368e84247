"""The gateway's outbox: a request is accepted when its rows and its event commit together.

The event is published right after the commit; what Kafka did not acknowledge (a timeout, a
broker that went away, a gateway killed between commit and publish) stays unpublished in the
``outbox`` table and a relay in every gateway replica republishes it, claiming rows with
``FOR UPDATE SKIP LOCKED`` so two replicas never send the same row at once. A republished
message is byte for byte the one first sent, same ``event_id``, so consumers' inboxes drop a
second copy. The gateway answers 503 only before it commits: when PostgreSQL fails, or when it
already knows Kafka is unreachable (a publish or probe failed and none succeeded since).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg

from jorge_runtime.db import DbConnection
from jorge_runtime.idempotency import (
    PublishedMarks,
    claim_unpublished_outbox,
    mark_outbox_published,
    stage_outbox,
)
from jorge_runtime.kafka.broker import KafkaPublisher, OutgoingMessage, PublishFailed
from jorge_runtime.tasks import cancel_and_wait
from services.gateway.idempotency import Claim

log = logging.getLogger(__name__)

CONSUMER = "gateway"  # the outbox's consumer column for the gateway's own rows

#: A route's writes, its event's outbox row and its idempotency mark in one statement
#: (publishing.accept_and_publish): the row and the mark are written only if the route's CTE
#: ``accepted`` has a row (at most one). The same statements as ``stage`` and
#: ``IdempotencyStore.mark_committed``, which do it in a transaction. Parameters $1-$9
#: (``accept_parameters``); the route's own start at $10.
ACCEPT_CTES = """
staged AS (
    INSERT INTO outbox (message_id, consumer, source_event_id, topic, message_key, headers, body)
    SELECT $1, $2, $1, $3, $4, $5, $6 FROM accepted
), committed AS (
    UPDATE idempotency_keys SET committed_at = now()
     WHERE organization_id = $7 AND idempotency_key = $8 AND locked_until = $9
       AND EXISTS (SELECT 1 FROM accepted)
)"""


#: The statement of a request whose event is the whole record: the event (and the mark) alone.
EVENT_ONLY = f"WITH accepted AS (SELECT 1), {ACCEPT_CTES}\nSELECT true FROM accepted"  # noqa: S608  constant SQL

#: Runs a repository's statement (its CTEs + ``ACCEPT_CTES``) with the request's event staged, and
#: publishes the event if accepted: ``publishing.accepting(gw, message)``. The row, or None.
Accept = Callable[..., Awaitable[asyncpg.Record | None]]


def accept_parameters(message: OutgoingMessage, claim: Claim | None) -> tuple[object, ...]:
    """Parameters $1-$9 of ``ACCEPT_CTES``: the event's outbox row and the request's key claim
    (nulls without an Idempotency-Key: the mark then updates nothing)."""
    return (
        uuid.UUID(message.message_id), CONSUMER, message.topic, message.key, message.headers, message.body,
        claim.organization_id if claim else None, claim.key if claim else None,
        claim.locked_until if claim else None,
    )  # fmt: skip


class BusState:
    """What this process last learnt about Kafka: reachable until a publish or probe fails."""

    def __init__(self) -> None:
        self.down_since: float | None = None

    @property
    def known_down(self) -> bool:
        return self.down_since is not None

    def failed(self) -> None:
        if self.down_since is None:
            log.warning("Kafka unreachable: new requests get 503 until it answers again")
            self.down_since = time.monotonic()

    def succeeded(self) -> None:
        if self.down_since is not None:
            down = round(time.monotonic() - self.down_since, 1)
            log.info("Kafka reachable again", extra={"down_seconds": down})
            self.down_since = None


class GatewayOutbox:
    """Stages events in the request's transaction, publishes them after commit, relays leftovers."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        publisher: KafkaPublisher,
        bus: BusState,
        probe: Callable[[float], Awaitable[bool]],
        *,
        grace_seconds: float,
        relay_interval_seconds: float = 1.0,
        batch: int = 200,
    ) -> None:
        self._pool = pool
        self._publisher = publisher
        self.bus = bus
        self._probe = probe
        self._grace = grace_seconds
        self._interval = relay_interval_seconds
        self._batch = batch
        self._acked = PublishedMarks(pool, relay_interval_seconds)
        self._relay_task: asyncio.Task[None] | None = None

    async def stage(self, conn: DbConnection, message: OutgoingMessage) -> None:
        """Record the event in the caller's transaction: committed means accepted."""
        await stage_outbox(conn, CONSUMER, message)

    async def publish_committed(self, message: OutgoingMessage) -> bool:
        """Publish a committed event; on failure the relay sends it later. True if acknowledged.

        The acknowledgement is recorded in batches off the request's path: a gateway that
        dies before recording it only makes the relay send the same event again.
        """
        try:
            await self._publisher.publish(message)
        except PublishFailed as exc:
            self.bus.failed()
            log.warning("event accepted but not yet published; the relay sends it", extra={"error": str(exc)})
            return False
        self.bus.succeeded()
        self._acked.add(message.message_id)
        return True

    async def relay_once(self) -> int:
        """Publish what is unacknowledged and older than the grace period; the number sent."""
        sent: list[uuid.UUID] = []
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                for message in await claim_unpublished_outbox(conn, CONSUMER, self._grace, self._batch):
                    await self._publisher.publish(message)
                    sent.append(uuid.UUID(message.message_id))
                if sent:
                    await mark_outbox_published(conn, sent)
        except PublishFailed:
            self.bus.failed()
            # What was sent before the failure is marked outside the rolled-back transaction.
            if sent:
                await mark_outbox_published(self._pool, sent)
            return len(sent)
        if sent:
            self.bus.succeeded()
            log.info("relayed accepted events Kafka had not acknowledged", extra={"count": len(sent)})
        return len(sent)

    async def start(self) -> None:
        """Start the relay (stopped by stop())."""
        self._relay_task = asyncio.get_running_loop().create_task(self._relay())

    async def stop(self) -> None:
        await cancel_and_wait(self._relay_task)
        self._relay_task = None
        await self._acked.close()

    async def _relay(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                if self.bus.known_down and await self._probe(self._interval):
                    self.bus.succeeded()
                if not self.bus.known_down:
                    await self.relay_once()
            except Exception:
                log.warning("outbox relay round failed; next round retries", exc_info=True)
