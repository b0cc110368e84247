"""The consumers' event ledger against a real PostgreSQL: one claim per event, messages staged with it."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from jorge_runtime.idempotency import EventLedger, PublishedMarks
from jorge_runtime.kafka.broker import OutgoingMessage


def message(number: int) -> OutgoingMessage:
    key = f"key-{number}" if number else None
    return OutgoingMessage(str(uuid.uuid4()), "t.topic", key, b"body-%d" % number, {"n": str(number)})


async def never_published(message: OutgoingMessage) -> None:
    raise AssertionError("nothing is published here")


async def test_the_first_claim_stages_the_messages_and_a_second_changes_nothing(pool: asyncpg.Pool) -> None:
    consumer = f"test-{uuid.uuid4().hex[:8]}"
    ledger = EventLedger(pool, consumer, publish=never_published)
    event_id = uuid.uuid4()
    messages = [message(0), message(1)]
    assert await ledger.outstanding(event_id) is None

    async with pool.acquire() as conn, conn.transaction():
        assert await ledger.record(conn, event_id, messages)
    async with pool.acquire() as conn, conn.transaction():
        assert not await ledger.record(conn, event_id, [message(2)])  # a redelivery: claimed already

    owed = await ledger.outstanding(event_id)
    assert owed is not None
    assert sorted(owed, key=lambda m: m.body) == messages  # keys, headers (jsonb) and bodies intact
    # An event that owes nothing is still claimed, and owes nothing.
    quiet = uuid.uuid4()
    async with pool.acquire() as conn, conn.transaction():
        assert await ledger.record(conn, quiet, [])
    assert await ledger.outstanding(quiet) == []


@pytest.mark.parametrize("look_first", [True, False], ids=["looks-first", "claims-first"])
async def test_handle_once_publishes_what_is_owed_and_nothing_twice(
    pool: asyncpg.Pool, look_first: bool
) -> None:
    published: list[OutgoingMessage] = []
    computed: list[uuid.UUID] = []

    async def publish(message: OutgoingMessage) -> None:
        published.append(message)

    ledger = EventLedger(pool, f"test-{uuid.uuid4().hex[:8]}", publish)

    async def handle(event_id: uuid.UUID) -> None:
        async def store() -> list[OutgoingMessage] | None:
            computed.append(event_id)
            staged = [message(len(computed))]
            async with pool.acquire() as conn, conn.transaction():
                return staged if await ledger.record(conn, event_id, staged) else None

        await ledger.handle_once(event_id, store, look_first=look_first)

    # A process that died after storing, before publishing: the redelivery owes the message.
    handled = uuid.uuid4()
    async with pool.acquire() as conn, conn.transaction():
        assert await ledger.record(conn, handled, [first := message(0)])
    await handle(handled)
    assert published == [first]
    await handle(handled)  # published and marked: a further redelivery owes nothing
    assert published == [first]
    # Looking first never computes a handled event again; claiming first computes, loses the
    # claim, and publishes only what is still owed.
    assert len(computed) == (0 if look_first else 2)

    fresh = uuid.uuid4()  # a new event: computed, claimed and published once either way
    await handle(fresh)
    await handle(fresh)
    assert len(published) == 2 and published[1].message_id != first.message_id


class CountedMarks(PublishedMarks):
    """The process's marks, counting statements; the first ``failures`` statements fail."""

    def __init__(self, pool: asyncpg.Pool, failures: int = 0) -> None:
        super().__init__(pool, retry_seconds=0.01)
        self.statements: list[int] = []
        self._failures = failures

    async def write(self, message_ids: list[uuid.UUID]) -> None:
        if self._failures:
            self._failures -= 1
            raise asyncpg.exceptions.ConnectionDoesNotExistError("PostgreSQL went away")
        await super().write(message_ids)
        self.statements.append(len(message_ids))


async def test_concurrent_handlers_share_their_published_marks_and_a_failed_mark_is_written_later(
    pool: asyncpg.Pool,
) -> None:
    marks = CountedMarks(pool, failures=1)
    consumer = f"test-{uuid.uuid4().hex[:8]}"

    async def publish(message: OutgoingMessage) -> None:
        await asyncio.sleep(0)

    async def handle(event_id: uuid.UUID) -> None:
        ledger = EventLedger(pool, consumer, publish, marks)

        async def store() -> list[OutgoingMessage] | None:
            staged = [message(1), message(2)]
            async with pool.acquire() as conn, conn.transaction():
                return staged if await ledger.record(conn, event_id, staged) else None

        await ledger.handle_once(event_id, store)

    events = [uuid.uuid4() for _ in range(40)]
    await asyncio.gather(*(handle(e) for e in events))
    await marks.close()
    ledger = EventLedger(pool, consumer)
    assert [await ledger.outstanding(e) for e in events] == [[]] * 40  # every message marked
    assert sum(marks.statements) == 80
    assert len(marks.statements) < 40  # shared statements, not one per message


async def test_a_redelivery_before_the_mark_is_written_publishes_nothing_again(pool: asyncpg.Pool) -> None:
    held = asyncio.Event()

    class HeldMarks(PublishedMarks):
        async def write(self, message_ids: list[uuid.UUID]) -> None:
            await held.wait()  # the mark's statement is slow to land
            await super().write(message_ids)

    marks = HeldMarks(pool)
    published: list[OutgoingMessage] = []

    async def publish(message: OutgoingMessage) -> None:
        published.append(message)

    ledger = EventLedger(pool, f"test-{uuid.uuid4().hex[:8]}", publish, marks)
    event_id = uuid.uuid4()

    async def store() -> list[OutgoingMessage] | None:
        staged = [message(1)]
        async with pool.acquire() as conn, conn.transaction():
            return staged if await ledger.record(conn, event_id, staged) else None

    for look_first in (True, False, True):  # the event, then two redeliveries
        await ledger.handle_once(event_id, store, look_first=look_first)
        await asyncio.sleep(0.01)
    assert len(published) == 1
    held.set()
    await marks.close()
    assert await ledger.outstanding(event_id) == []
