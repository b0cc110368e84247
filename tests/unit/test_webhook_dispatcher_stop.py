"""The dispatcher's loop stops when asked, even when a wake-up races the cancel.

On Python 3.11 ``asyncio.wait_for`` swallows a cancel that arrives just after the awaited
event is set; the loop then ran on and ``stop()`` waited forever (a CI teardown hang).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from jorge_runtime.kafka.broker import OutgoingMessage
from services.crm_sync.webhook_delivery.dispatcher import Dispatcher
from services.crm_sync.webhook_delivery.repository import Claimed, DeliveryRepository
from services.crm_sync.webhook_delivery.schedule import RetryPolicy
from services.crm_sync.webhook_delivery.sender import WebhookSender


class NothingDue(DeliveryRepository):
    """A repository with no due deliveries and nothing in the outbox."""

    async def claim(self, pool: Any, **_: Any) -> tuple[uuid.UUID, list[Claimed]]:
        return uuid.uuid4(), []

    async def unpublished(self, pool: Any, consumer: str, older_than_seconds: float) -> list[OutgoingMessage]:
        return []


def dispatcher() -> Dispatcher:
    async def publish(_: Any) -> None:
        return None

    return Dispatcher(
        pool=lambda: None,  # type: ignore[arg-type, return-value]
        repository=NothingDue(),
        sender=WebhookSender(allowed=(), attempt_timeout=1.0, connect_timeout=1.0, require_https=False),
        policy=RetryPolicy(),
        publish=publish,
        disabled_topic="unused",
        poll_seconds=30.0,
        max_in_flight=10,
        lease_seconds=5.0,
    )


@pytest.mark.parametrize("turns_before_stop", range(6))
async def test_stop_returns_when_a_wake_up_races_it(turns_before_stop: int) -> None:
    engine = dispatcher()
    await engine.start()
    for _ in range(3):
        await asyncio.sleep(0)  # the loop is now waiting for a wake-up
    engine.wake()
    for _ in range(turns_before_stop):
        await asyncio.sleep(0)
    stopping = asyncio.create_task(engine.stop(grace_seconds=0.1))
    done, _ = await asyncio.wait({stopping}, timeout=5)  # unlike wait_for, never cancels it
    assert done, "stop() is still waiting for the claim loop"
    await stopping
