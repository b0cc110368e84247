"""The gateway's one way to accept work: store the request and its event together, then publish.

Two forms of the same promise. ``accept_and_publish`` stores the request, its event's outbox row
and its idempotency mark in one statement (one round trip instead of BEGIN, the writes, the
outbox row, the mark and COMMIT): every intake route (leads, buyers, sellers, consultations,
lead events, GHL webhooks), whose event is known before its writes. ``store_and_publish`` does
it in a transaction, for routes that read and check state before they write, or build the event
from what they wrote (webhook endpoints' test events and redeliveries).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from jorge_runtime.db import DbConnection
from jorge_runtime.kafka.broker import OutgoingMessage
from services.gateway.dependencies import Gateway
from services.gateway.errors import bus_unavailable
from services.gateway.idempotency import current_claim
from services.gateway.outbox import Accept, accept_parameters

T = TypeVar("T")


async def store_and_publish(
    gw: Gateway,
    write: Callable[[DbConnection], Awaitable[T]],
    message: OutgoingMessage | Callable[[T], OutgoingMessage],
) -> T:
    """Run ``write`` and stage ``message`` (or the message built from what ``write`` returned)
    in one transaction, then publish it. Committed means accepted: a 201/202 follows even if
    Kafka does not acknowledge in time (the outbox relay delivers it, same event id). A 503
    (raised here) comes only before anything is written: Kafka is known to be unreachable.
    """
    if gw.outbox.bus.known_down:
        raise bus_unavailable("Kafka is unreachable")
    async with gw.pool.acquire() as conn, conn.transaction():
        stored = await write(conn)
        outgoing = message(stored) if callable(message) else message
        await gw.outbox.stage(conn, outgoing)
        claim = current_claim.get()
        if claim is not None:
            await gw.idempotency.mark_committed(conn, claim)
    await gw.outbox.publish_committed(outgoing)
    return stored


async def accept_and_publish(
    gw: Gateway, message: OutgoingMessage, statement: str, *parameters: object
) -> asyncpg.Record | None:
    """Run ``statement`` (``WITH`` + the route's CTEs, the last named ``accepted``, + ``,`` +
    ``outbox.ACCEPT_CTES`` + a SELECT from ``accepted``; the route's parameters from $10) and publish
    ``message`` if it was accepted. Its row, or None when ``accepted`` had none: then nothing
    was written, nothing is published, and the route says why (e.g. 409). Same promise as
    ``store_and_publish``: a 503 only before anything is written.
    """
    if gw.outbox.bus.known_down:
        raise bus_unavailable("Kafka is unreachable")
    row: asyncpg.Record | None = await gw.pool.fetchrow(
        statement, *accept_parameters(message, current_claim.get()), *parameters
    )
    if row is not None:
        await gw.outbox.publish_committed(message)
    return row


def accepting(gw: Gateway, message: OutgoingMessage) -> Accept:
    """The ``Accept`` a route hands its repository: ``accept_and_publish`` with ``message``."""

    async def accept(statement: str, *parameters: object) -> asyncpg.Record | None:
        return await accept_and_publish(gw, message, statement, *parameters)

    return accept
