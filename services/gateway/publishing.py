"""The gateway's one way to accept work: store the request and publish its event atomically."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from jorge_runtime.broker import OutgoingMessage, PublishFailed
from jorge_runtime.db import DbConnection
from services.gateway.dependencies import Gateway
from services.gateway.errors import bus_unavailable

T = TypeVar("T")


async def store_and_publish(
    gw: Gateway,
    write: Callable[[DbConnection], Awaitable[T]],
    message: OutgoingMessage | Callable[[T], OutgoingMessage],
) -> T:
    """Run ``write`` and publish ``message`` (or the message built from what ``write`` returned)
    in one transaction that commits only after Kafka acknowledged: a 201/202 means the work is
    on its way, and a 503 (raised here) means nothing was stored."""
    try:
        async with gw.pool.acquire() as conn, conn.transaction():
            stored = await write(conn)
            await gw.publisher.publish(message(stored) if callable(message) else message)
    except PublishFailed as exc:
        raise bus_unavailable(exc) from None
    return stored
