"""Kafka broker construction and the one way every service publishes bytes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.message import StreamMessage

from jorge_runtime.kafka.security import kafka_security
from jorge_runtime.observability.tracing import kafka_middlewares
from jorge_runtime.settings import Settings
from schemas.envelope import EventEnvelope
from schemas.registry import upcast_to_current


class PublishFailed(Exception):
    """The broker did not acknowledge a message in time (or refused it)."""


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A serialised message ready for Kafka: the id travels in headers as event-id."""

    message_id: str
    topic: str
    key: str | None
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


async def upcasting_decoder(
    msg: StreamMessage[Any], default: Callable[[StreamMessage[Any]], Awaitable[Any]]
) -> Any:
    """FastStream's JSON decoding, then events of an older schema version upcast to the current
    one (schemas/registry.py), so handlers read both versions during a migration."""
    return upcast_to_current(await default(msg))


def create_broker(settings: Settings, *, client_id: str, producer_only: bool = False) -> KafkaBroker:
    """A KafkaBroker that waits for acks=all and is idempotent where the broker supports it.

    A producer-only broker (the gateway) lets unsent messages expire with the publish timeout,
    so a request answered 503 is not delivered later when Kafka comes back. Consumers keep
    aiokafka's default, which group joins need. Trace propagation and Kafka metrics come with
    every broker (jorge_runtime.observability.tracing.kafka_middlewares); the service is the client id
    without its ``jorge-`` prefix.
    """
    settings.require("kafka_bootstrap_servers")
    assert settings.kafka_bootstrap_servers is not None
    timeouts = (
        {"request_timeout_ms": int(settings.kafka_publish_timeout_seconds * 1000)} if producer_only else {}
    )
    return KafkaBroker(
        settings.kafka_bootstrap_servers.split(","),
        client_id=client_id,
        acks="all",
        enable_idempotence=settings.kafka_enable_idempotence,
        linger_ms=settings.kafka_linger_ms,
        logger=None,
        security=kafka_security(settings),
        middlewares=kafka_middlewares(settings, client_id.removeprefix("jorge-")),
        decoder=upcasting_decoder,
        **timeouts,  # type: ignore[arg-type]
    )


class KafkaPublisher:
    """Publishes OutgoingMessages and waits for the broker's acknowledgement, bounded in time."""

    def __init__(self, broker: KafkaBroker, timeout_seconds: float) -> None:
        self._broker = broker
        self._timeout = timeout_seconds

    async def publish(self, message: OutgoingMessage) -> None:
        """Send one message; raise PublishFailed if it is not acknowledged within the timeout."""
        try:
            async with asyncio.timeout(self._timeout):  # unlike wait_for, never loses a cancel
                await self._broker.publish(
                    message.body,
                    topic=message.topic,
                    key=message.key.encode() if message.key is not None else None,
                    headers=message.headers,
                )
        except (TimeoutError, OSError) as exc:
            raise PublishFailed(f"Kafka did not acknowledge the message within {self._timeout:g}s") from exc
        except Exception as exc:  # aiokafka raises KafkaError subclasses for every broker refusal
            if type(exc).__module__.startswith("aiokafka"):
                raise PublishFailed(f"Kafka refused the message: {type(exc).__name__}") from exc
            raise


def event_message(event: EventEnvelope, *, topic: str, key: str) -> OutgoingMessage:
    """Serialise an event for Kafka, keyed by its entity id, with the envelope mirrored in headers."""
    return OutgoingMessage(
        message_id=str(event.event_id),
        topic=topic,
        key=key,
        body=event.model_dump_json().encode(),
        headers=event.kafka_headers(),
    )
