"""The gateway's one way to accept work: store the request and its event in one transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from jorge_runtime.db import DbConnection
from jorge_runtime.kafka.broker import OutgoingMessage
from services.gateway.dependencies import Gateway
from services.gateway.errors import bus_unavailable
from services.gateway.idempotency import current_claim

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
