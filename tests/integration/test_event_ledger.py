"""The consumers' event ledger against a real PostgreSQL: one claim per event, messages staged with it."""

from __future__ import annotations

import uuid

import asyncpg

from jorge_runtime.idempotency import EventLedger
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
