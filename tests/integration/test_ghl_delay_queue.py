"""The delay queue on the real broker: nothing is delivered before it is due, order holds."""

from __future__ import annotations

import asyncio
import time

from jorge_runtime.kafka.offset_commits import OffsetCommits
from jorge_runtime.kafka.security import kafka_client_options
from jorge_runtime.settings import Settings
from schemas.topics import CRM_RETRY_TOPICS, TopicNames
from services.crm_sync.ghl.budget import Priority
from services.crm_sync.ghl.delay_queue import DelayQueue
from services.crm_sync.ghl.lane_message import LaneMessage
from tests.support.services import produce


async def test_messages_wait_until_due_and_keep_their_order(settings: Settings, topics: TopicNames) -> None:
    assert settings.kafka_bootstrap_servers
    bootstrap = settings.kafka_bootstrap_servers
    delivered: list[tuple[bytes, float, float, int, Priority]] = []

    async def handle(message: LaneMessage) -> None:
        due = int(message.headers["crm-due-at"]) / 1000
        delivered.append((message.body, time.time(), due, message.attempt, message.lane))

    async def reject(*args: object) -> None:
        raise AssertionError(f"nothing here is invalid: {args}")

    queue = DelayQueue(
        connection=kafka_client_options(settings),
        topics=[topics(spec) for spec in CRM_RETRY_TOPICS],
        group_id=f"{settings.kafka_consumer_group_prefix}delay-test",
        handle=handle,
        reject=reject,
        commits=OffsetCommits(0.2),
    )
    await queue.start()
    try:
        now = time.time()
        topic = topics(CRM_RETRY_TOPICS[0])
        for body, key, delay in ((b"a1", "a", 2.0), (b"a2", "a", 2.5), (b"b1", "b", 0.0)):
            headers = {"crm-due-at": str(int((now + delay) * 1000)), "crm-attempt": "2", "crm-lane": "hot"}
            await produce(bootstrap, topic, body, key=key, headers=headers)
        deadline = time.monotonic() + 30
        while len(delivered) < 3:
            assert time.monotonic() < deadline, f"delivered only {delivered}"
            await asyncio.sleep(0.05)
    finally:
        await queue.stop()

    assert all(at >= due for _, at, due, _, _ in delivered), delivered
    bodies = [body for body, *_ in delivered]
    assert bodies.index(b"a1") < bodies.index(b"a2")
    assert {(attempt, lane) for *_, attempt, lane in delivered} == {(2, "hot")}
