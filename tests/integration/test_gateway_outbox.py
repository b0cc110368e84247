"""The gateway's outbox on the real broker and PostgreSQL: committed means delivered, once."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path

import asyncpg

from jorge_runtime.kafka.broker import KafkaPublisher, OutgoingMessage, PublishFailed, create_broker
from jorge_runtime.settings import Settings
from schemas.topics import LEAD_QUALIFICATION_REQUESTED, TopicNames
from services.gateway.outbox import BusState, GatewayOutbox
from tests.support.services import ServiceProcess, read_topic


class _Unreachable(KafkaPublisher):
    """Kafka that never acknowledges (as after a timeout): the message may or may not be there."""

    def __init__(self) -> None:
        pass

    async def publish(self, message: OutgoingMessage) -> None:
        raise PublishFailed("Kafka did not acknowledge the message within 2s")


async def _never(timeout: float) -> bool:
    return False


def _message(topic: str, n: int) -> OutgoingMessage:
    event_id = str(uuid.uuid4())
    return OutgoingMessage(event_id, topic, f"lead-{n}", f'{{"n": {n}}}'.encode(), {"event-id": event_id})


async def _stage(outbox: GatewayOutbox, pool: asyncpg.Pool, message: OutgoingMessage) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await outbox.stage(conn, message)


async def test_unacknowledged_event_is_accepted_and_relayed_with_its_event_id(
    settings: Settings, topics: TopicNames, pool: asyncpg.Pool
) -> None:
    topic = topics(LEAD_QUALIFICATION_REQUESTED)
    message = _message(topic, 1)
    down = GatewayOutbox(pool, _Unreachable(), BusState(), _never, grace_seconds=0)
    await _stage(down, pool, message)
    assert await down.publish_committed(message) is False
    assert down.bus.known_down  # the next request is refused before anything is written

    broker = create_broker(settings, client_id="jorge-gateway-test", producer_only=True)
    await broker.connect()
    try:
        relay = GatewayOutbox(pool, KafkaPublisher(broker, 10), BusState(), broker.ping, grace_seconds=0)
        assert await relay.relay_once() >= 1
        assert await relay.relay_once() == 0  # marked: never sent twice by the relay
    finally:
        await broker.stop()
    assert settings.kafka_bootstrap_servers
    records = await read_topic(settings.kafka_bootstrap_servers, topic, until=lambda r: len(r) >= 1)
    assert [r.headers["event-id"] for r in records] == [message.message_id]
    published = await pool.fetchval(
        "SELECT published_at IS NOT NULL FROM outbox WHERE message_id = $1", uuid.UUID(message.message_id)
    )
    assert published


async def test_two_replicas_relaying_at_once_send_each_event_once(
    settings: Settings, topics: TopicNames, pool: asyncpg.Pool
) -> None:
    topic = topics(LEAD_QUALIFICATION_REQUESTED)
    messages = [_message(topic, n) for n in range(40)]
    staging = GatewayOutbox(pool, _Unreachable(), BusState(), _never, grace_seconds=0)
    for message in messages:
        await _stage(staging, pool, message)
    brokers = [create_broker(settings, client_id=f"jorge-gw-{n}", producer_only=True) for n in (1, 2)]
    for broker in brokers:
        await broker.connect()
    try:
        relays = [
            GatewayOutbox(pool, KafkaPublisher(b, 10), BusState(), b.ping, grace_seconds=0, batch=7)
            for b in brokers
        ]
        for _ in range(10):
            await asyncio.gather(*(relay.relay_once() for relay in relays))
    finally:
        for broker in brokers:
            await broker.stop()
    assert settings.kafka_bootstrap_servers
    records = await read_topic(settings.kafka_bootstrap_servers, topic, until=lambda r: len(r) >= 40)
    counts = Counter(r.headers["event-id"] for r in records)
    assert set(counts) == {m.message_id for m in messages}
    assert max(counts.values()) == 1


async def test_a_running_gateway_relays_what_a_crashed_one_left_unpublished(
    settings: Settings, topics: TopicNames, pool: asyncpg.Pool, log_dir: Path
) -> None:
    """A gateway killed between its commit and its publish leaves a staged row; every replica's
    relay sends it once it is older than the grace period (2 x the publish timeout + 1 s)."""
    topic = topics(LEAD_QUALIFICATION_REQUESTED)
    left = _message(topic, 7)
    staging = GatewayOutbox(pool, _Unreachable(), BusState(), _never, grace_seconds=0)
    await _stage(staging, pool, left)
    await pool.execute(
        "UPDATE outbox SET created_at = now() - interval '1 minute' WHERE message_id = $1",
        uuid.UUID(left.message_id),
    )
    gateway = await ServiceProcess.gateway(settings, log_dir).start()
    try:
        assert settings.kafka_bootstrap_servers
        records = await read_topic(settings.kafka_bootstrap_servers, topic, until=lambda r: len(r) >= 1)
    finally:
        gateway.stop()
    assert [r.headers["event-id"] for r in records] == [left.message_id]


async def test_the_gateway_accepts_again_once_a_probe_reaches_kafka(pool: asyncpg.Pool) -> None:
    answers = iter([False, False, True])

    async def probe(timeout: float) -> bool:
        return next(answers, True)

    outbox = GatewayOutbox(
        pool, _Unreachable(), BusState(), probe, grace_seconds=3600, relay_interval_seconds=0.05
    )
    outbox.bus.failed()
    await outbox.start()
    try:
        for _ in range(100):
            if not outbox.bus.known_down:
                break
            await asyncio.sleep(0.05)
    finally:
        await outbox.stop()
    assert not outbox.bus.known_down
    assert next(answers, None) is None  # it probed until Kafka answered
