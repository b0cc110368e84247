"""Wiring of the GHL sync into the crm_sync worker: intake, lanes, delay queue, lifecycle."""

from __future__ import annotations

from typing import Any

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from jorge_runtime.kafka.background_consumers import BackgroundConsumers
from jorge_runtime.kafka.broker import KafkaPublisher, create_broker
from jorge_runtime.kafka.error_policy import INVALID_MESSAGE_ERRORS, describe, mark_recorded
from jorge_runtime.kafka.security import kafka_client_options
from jorge_runtime.settings import Settings
from jorge_runtime.worker import WorkerResources, consumer_options, install_dead_letter_policy
from schemas.topics import (
    BUYER_MATCHED,
    CRM_LANE_HOT,
    CRM_LANE_STANDARD,
    CRM_RETRY_TOPICS,
    LEAD_QUALIFIED,
    SELLER_ANALYZED,
    SELLER_CONSULTATION_REQUESTED,
    TopicNames,
    TopicSpec,
)
from services.crm_sync.ghl.budget import Priority
from services.crm_sync.ghl.delay_queue import DelayQueue
from services.crm_sync.ghl.handlers import SERVICE, IntakeHandler, SyncHandler, text_headers
from services.crm_sync.ghl.retry_schedule import attempt_of

#: Consumer groups are `{prefix}crm_sync.ghl.{topic}`: one per topic, apart from the webhook
#: engine's, so a rebalance or a slow CRM on one never pauses the others.
GROUP = "crm_sync.ghl"
FETCH_MAX_WAIT_MS = 100
INTAKE_TOPICS = (LEAD_QUALIFIED, BUYER_MATCHED, SELLER_ANALYZED, SELLER_CONSULTATION_REQUESTED)


class GhlSync:
    """The installed sync, on a Kafka broker of its own: open it once the worker's pool and
    Redis are open, start it after the worker's broker, stop and close it in reverse."""

    def __init__(self, broker: KafkaBroker, handler: SyncHandler, delay_queue: DelayQueue) -> None:
        self.broker = broker
        self.handler = handler
        self.delay_queue = delay_queue
        self.consumers = BackgroundConsumers(broker, name="crm_sync-ghl-consumers", companions=[delay_queue])

    async def open(self) -> None:
        await self.handler.open()

    async def start(self) -> None:
        """Start the intake, lane and delay-queue consumers in the background, in parallel, and
        the release of events waiting for credentials."""
        self.consumers.start()
        self.handler.waiting.start()

    async def stop(self) -> None:
        await self.handler.waiting.stop()
        await self.consumers.stop()

    async def close(self) -> None:
        await self.handler.close()


def _options(settings: Settings, topic: TopicSpec) -> dict[str, Any]:
    return {
        **consumer_options(settings, SERVICE),
        "group_id": f"{settings.kafka_consumer_group_prefix}{GROUP}.{topic.name}",
        # Two hops (intake, lane) before GHL: a shorter broker wait keeps a lead's way to the
        # CRM short when traffic is light (aiokafka's default waits up to 500 ms per fetch).
        "fetch_max_wait_ms": FETCH_MAX_WAIT_MS,
    }


def install_ghl_sync(settings: Settings, resources: WorkerResources) -> GhlSync:
    """Subscribe the intake and lane handlers on a broker of their own; build the delay queue."""
    settings.require("kafka_bootstrap_servers")
    assert settings.kafka_bootstrap_servers
    broker = create_broker(settings, client_id="jorge-crm_sync-ghl")
    install_dead_letter_policy(broker, settings, SERVICE, resources)
    publisher = KafkaPublisher(broker, settings.kafka_publish_timeout_seconds)
    topics = TopicNames(settings.kafka_topic_prefix)
    intake = IntakeHandler(publisher, topics)
    handler = SyncHandler(settings=settings, resources=resources, publisher=publisher, topics=topics)

    for spec in INTAKE_TOPICS:

        @broker.subscriber(topics(spec), **_options(settings, spec))
        async def on_event(msg: KafkaMessage) -> None:
            """Forward the event to the hot or standard lane."""
            headers = text_headers(msg.headers)
            key = _key(msg.raw_message)
            try:
                await intake.forward(msg.body, headers, key)
            except INVALID_MESSAGE_ERRORS as error:
                # Kept for `jorge dlq`; re-raised so the shared policy publishes the dead letter.
                await handler.failures.record_invalid(msg.body, headers, key, "standard", error)
                mark_recorded(error)  # the policy publishes it; the row is written
                raise

    for spec, lane in ((CRM_LANE_HOT, "hot"), (CRM_LANE_STANDARD, "standard")):
        _subscribe_lane(broker, settings, topics, spec, lane, handler)  # type: ignore[arg-type]

    # Declared for the AsyncAPI document; the intake and the outcomes publish through KafkaPublisher.
    for spec in (CRM_LANE_HOT, CRM_LANE_STANDARD, *CRM_RETRY_TOPICS):
        broker.publisher(topics(spec), title=f"crm_sync.{spec.name}", description=spec.description)

    async def reject(
        body: bytes, headers: dict[str, str], key: str | None, lane: str, attempt: int, error: BaseException
    ) -> None:
        await handler.failures.dead_letter(
            body, headers, key, lane, attempt, "invalid_message", describe(error),
            error_type=type(error).__name__,
        )  # fmt: skip

    delay_queue = DelayQueue(
        connection=kafka_client_options(settings),
        topics=[topics(spec) for spec in CRM_RETRY_TOPICS],
        group_id=f"{settings.kafka_consumer_group_prefix}{GROUP}.retry",
        handle=handler.handle,
        reject=reject,
    )
    return GhlSync(broker, handler, delay_queue)


def _subscribe_lane(
    broker: KafkaBroker,
    settings: Settings,
    topics: TopicNames,
    spec: TopicSpec,
    lane: Priority,
    handler: SyncHandler,
) -> None:
    @broker.subscriber(topics(spec), **_options(settings, spec))
    async def on_lane(msg: KafkaMessage) -> None:
        """Write the event to GHL (retries and dead letters are the handler's business)."""
        headers = text_headers(msg.headers)
        key = _key(msg.raw_message)
        try:
            await handler.handle(msg.body, headers, key, lane, attempt_of(headers))
        except INVALID_MESSAGE_ERRORS as error:
            await handler.failures.record_invalid(msg.body, headers, key, lane, error)
            mark_recorded(error)
            raise


def _key(record: Any) -> str | None:
    key = getattr(record, "key", None)
    return key.decode(errors="replace") if isinstance(key, bytes) else None
