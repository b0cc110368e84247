"""Inbox and outbox for consumers: a redelivered event changes nothing and publishes nothing twice.

This module owns the ``outbox`` table's statements: staging a message, finding what is still
unpublished (the gateway's relay, crm_sync's webhook engine sweep, a redelivered event) and
marking messages published.

A consumer records the event id and the messages it must publish in the same transaction as
its own writes. Messages are marked once Kafka acknowledges them (by ``PublishedMarks``, many
per statement, in workers and the gateway); if the process dies between the commit and the
mark, the redelivery publishes the stored messages again with the same event ids (downstream
consumers deduplicate on them) instead of recomputing.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence

import asyncpg

from jorge_runtime.db import DbConnection, Executor
from jorge_runtime.kafka.broker import OutgoingMessage
from jorge_runtime.tasks import cancel_and_wait

log = logging.getLogger(__name__)

Publish = Callable[[OutgoingMessage], Awaitable[None]]

_STAGE = """INSERT INTO outbox (message_id, consumer, source_event_id, topic, message_key, headers, body)
            VALUES ($1, $2, $3, $4, $5, $6, $7)"""


def _outbox_row(
    consumer: str, message: OutgoingMessage, source_event_id: uuid.UUID | None = None
) -> tuple[object, ...]:
    message_id = uuid.UUID(message.message_id)
    return (
        message_id, consumer, source_event_id or message_id, message.topic, message.key, message.headers,
        message.body,
    )  # fmt: skip


async def stage_outbox(conn: DbConnection, consumer: str, message: OutgoingMessage) -> None:
    """Stage a message that no consumed event caused (its own id stands as its source) in the
    caller's transaction: published after commit, republished by a relay if never acknowledged."""
    await conn.execute(_STAGE, *_outbox_row(consumer, message))


_CLAIM_UNPUBLISHED = """SELECT message_id, topic, message_key, headers, body FROM outbox
                         WHERE consumer = $1 AND published_at IS NULL
                           AND created_at < now() - make_interval(secs => $2::float8)
                         ORDER BY created_at LIMIT $3 FOR UPDATE SKIP LOCKED"""
# A function of migration 0027, planned once per connection (see there).
_MARK_PUBLISHED = "SELECT mark_outbox_published($1::uuid[])"


def _staged_message(row: asyncpg.Record) -> OutgoingMessage:
    return OutgoingMessage(
        str(row["message_id"]), row["topic"], row["message_key"], bytes(row["body"]), row["headers"]
    )


async def claim_unpublished_outbox(
    db: Executor, consumer: str, older_than_seconds: float, limit: int
) -> list[OutgoingMessage]:
    """The consumer's staged messages still unpublished after ``older_than_seconds`` (Kafka did
    not acknowledge them, or the process died first), oldest first. Inside a transaction the rows
    stay locked until it ends and other claimers skip them, so two relays never send one row at
    once; on the pool the lock ends with the statement."""
    rows = await db.fetch(_CLAIM_UNPUBLISHED, consumer, older_than_seconds, limit)
    return [_staged_message(row) for row in rows]


async def mark_outbox_published(db: Executor, message_ids: Sequence[str | uuid.UUID]) -> None:
    """Record that Kafka acknowledged these staged messages (a relay never sends them again)."""
    await db.execute(_MARK_PUBLISHED, [m if isinstance(m, uuid.UUID) else uuid.UUID(m) for m in message_ids])


class PublishedMarks:
    """Records Kafka's acknowledgements of staged messages off the handler's path, many per
    statement: each flush marks everything acknowledged since the last one, and starts as soon
    as the last one ended, so concurrent handlers share one UPDATE instead of one each.

    A mark that could not be written is tried again at the next flush (at most ``retry_seconds``
    later); one never written only means a redelivered event, or the gateway's relay, sends the
    same message again (same event id: consumers drop the copy). ``close`` writes what is left.
    """

    def __init__(self, pool: asyncpg.Pool, retry_seconds: float = 1.0) -> None:
        self._pool = pool
        self._retry = retry_seconds
        self._pending: list[uuid.UUID] = []
        self._unwritten: set[uuid.UUID] = set()  # pending, or in the statement under way
        self._added = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def add(self, message_id: str) -> None:
        """Kafka acknowledged this staged message: mark it in the next flush."""
        self._pending.append(uuid.UUID(message_id))
        self._unwritten.add(self._pending[-1])
        self._added.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush_continually(), name="outbox-published-marks")

    async def flush(self) -> None:
        """Write the pending marks now (put back, to try again, if the statement fails)."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        try:
            await self.write(pending)
        except BaseException:
            self._pending[:0] = pending
            raise
        self._unwritten.difference_update(pending)

    def acknowledged(self, message_id: uuid.UUID) -> bool:
        """Whether Kafka acknowledged the message and its mark is not written yet: a redelivered
        event must not publish it again because the row still says unpublished."""
        return message_id in self._unwritten

    async def write(self, message_ids: list[uuid.UUID]) -> None:
        """One flush's statement."""
        await mark_outbox_published(self._pool, message_ids)

    async def close(self) -> None:
        """Stop flushing in the background and write what is left."""
        await cancel_and_wait(self._task)
        await self.flush()

    async def _flush_continually(self) -> None:
        while True:
            await self._added.wait()
            self._added.clear()
            try:
                await self.flush()
            except Exception:
                log.warning("could not mark published messages; trying again", exc_info=True)
                self._added.set()
                await asyncio.sleep(self._retry)


#: The claim, and the event's messages staged only if the claim succeeded, as CTEs taking
#: parameters $1-$7 (``EventLedger.claim_parameters``). A consumer that stores its own rows in the
#: same statement (``EventLedger.claim_and_write``) appends its CTEs, numbers its parameters from
#: $8 and selects ``FROM claimed`` in them, so that they write only when this delivery claims the
#: event: a data-modifying CTE runs whether or not the outer query reads it.
CLAIM_CTES = """
claimed AS (
    INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2)
    ON CONFLICT DO NOTHING RETURNING event_id
), staged AS (
    INSERT INTO outbox (message_id, consumer, source_event_id, topic, message_key, headers, body)
    SELECT m.message_id, $1, claimed.event_id, m.topic, m.message_key, m.headers, m.body
      FROM claimed,
           unnest($3::uuid[], $4::text[], $5::text[], $6::jsonb[], $7::bytea[])
               AS m(message_id, topic, message_key, headers, body)
)"""

_CLAIM_AND_STAGE = f"WITH {CLAIM_CTES}\nSELECT EXISTS (SELECT 1 FROM claimed)"  # noqa: S608  constant SQL, values as $n placeholders


class EventLedger:
    """One consumer's record of handled events and of the messages it owes."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        consumer: str,
        publish: Publish | None = None,
        marks: PublishedMarks | None = None,
    ) -> None:
        """``publish`` may be left out by a caller that only claims events and stages nothing;
        ``marks`` (the process's) records acknowledgements in batches, else each is written
        before ``publish`` returns."""
        self._pool = pool
        self.consumer = consumer
        self._publish = publish
        self._marks = marks

    async def handle_once(
        self,
        event_id: uuid.UUID,
        compute_and_store: Callable[[], Awaitable[list[OutgoingMessage] | None]],
        *,
        look_first: bool = True,
    ) -> None:
        """Run ``compute_and_store`` unless the event was handled before, then publish what is
        still owed. ``compute_and_store`` claims the event with its own writes (``claim_and_write``,
        or ``record`` in its transaction) and returns the messages it staged, or None when the
        event was claimed before (a redelivery, or a concurrent delivery that won).

        ``look_first=False`` is for a computation cheap enough to redo on the rare redelivery (no
        paid API call): the event is computed and claimed at once, and looked up only when the
        claim was lost, one round trip fewer per event. A delivery that loses to a concurrent one
        (a rebalance) may then publish the winner's messages too: same event ids, consumers drop
        the second copy.
        """
        if look_first:
            outstanding = await self.outstanding(event_id)
            if outstanding is None:
                outstanding = await compute_and_store()
        else:
            outstanding = await compute_and_store()
            if outstanding is None:
                outstanding = await self.outstanding(event_id)
        await self.publish(outstanding or [])

    async def outstanding(self, event_id: uuid.UUID) -> list[OutgoingMessage] | None:
        """None if the event was never handled; else the messages still to publish (often none)."""
        rows = await self._pool.fetch(
            """SELECT o.message_id, o.topic, o.message_key, o.headers, o.body
                 FROM processed_events p
                 LEFT JOIN outbox o ON o.consumer = p.consumer AND o.source_event_id = p.event_id
                                   AND o.published_at IS NULL
                WHERE p.consumer = $1 AND p.event_id = $2
                ORDER BY o.created_at""",
            self.consumer,
            event_id,
        )
        if not rows:
            return None
        owed = [r for r in rows if r["message_id"] is not None]
        if self._marks is not None:  # sent already, only its mark is still on its way
            owed = [r for r in owed if not self._marks.acknowledged(r["message_id"])]
        return [_staged_message(r) for r in owed]

    def claim_parameters(self, event_id: uuid.UUID, messages: list[OutgoingMessage]) -> tuple[object, ...]:
        """Parameters $1-$7 of ``CLAIM_CTES``: this consumer, the event, the messages to stage."""
        return (
            self.consumer,
            event_id,
            [uuid.UUID(m.message_id) for m in messages],
            [m.topic for m in messages],
            [m.key for m in messages],
            [m.headers for m in messages],
            [m.body for m in messages],
        )

    async def record(self, conn: DbConnection, event_id: uuid.UUID, messages: list[OutgoingMessage]) -> bool:
        """Inside the caller's transaction: claim the event and stage its messages, in one
        statement (one round trip whatever the number of messages).

        Returns False when another delivery of the same event claimed it first; nothing is
        staged and the caller then rolls back its own writes.
        """
        claimed: bool = await conn.fetchval(_CLAIM_AND_STAGE, *self.claim_parameters(event_id, messages))
        return claimed

    async def claim_and_write(
        self, event_id: uuid.UUID, messages: list[OutgoingMessage], statement: str, *parameters: object
    ) -> bool:
        """Claim the event, stage its messages and store the consumer's own rows in one statement
        (atomic without a transaction: one round trip instead of five or more).

        ``statement`` is ``WITH`` + ``CLAIM_CTES`` + the consumer's CTEs (parameters from $8:
        ``parameters``), ending in a SELECT that is true when ``claimed`` has a row. False, with
        nothing written, when another delivery of the same event claimed it first.
        """
        claimed: bool = await self._pool.fetchval(
            statement, *self.claim_parameters(event_id, messages), *parameters
        )
        return claimed

    async def publish(self, messages: list[OutgoingMessage]) -> None:
        """Publish staged messages in order and mark each as sent once acknowledged."""
        if not messages:
            return
        publish = self._publish
        if publish is None:
            raise RuntimeError(f"ledger {self.consumer} has messages to publish but no publisher")
        for message in messages:
            await publish(message)
            if self._marks is not None:
                self._marks.add(message.message_id)
            else:
                await mark_outbox_published(self._pool, [message.message_id])
