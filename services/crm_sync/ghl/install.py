"""Wiring of the GHL sync into the crm_sync worker: intake, lanes, delay queue, lifecycle."""

from __future__ import annotations

from typing import Any, cast

from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage

from jorge_runtime.kafka.background_consumers import BackgroundConsumers
from jorge_runtime.kafka.broker import KafkaPublisher, create_broker
from jorge_runtime.kafka.error_policy import INVALID_MESSAGE_ERRORS, describe, mark_recorded
from jorge_runtime.kafka.offset_commits import OffsetCommits
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
from services.crm_sync.ghl.handlers import IntakeHandler, SyncHandler, text_headers
from services.crm_sync.ghl.lane_message import LaneMessage
from services.crm_sync.ghl.retry_schedule import attempt_of
from services.crm_sync.names import GHL_CONSUMER, SERVICE

# Consumer groups are `{prefix}crm_sync.ghl.{topic}` (GHL_CONSUMER): one per topic, apart from the
# webhook engine's, so a rebalance or a slow CRM on one never pauses the others.
INTAKE_TOPICS = (LEAD_QUALIFIED, BUYER_MATCHED, SELLER_ANALYZED, SELLER_CONSULTATION_REQUESTED)


class GhlSync:
    """The installed sync, on a Kafka broker of its own. The composition root gives it its
    handler (``attach``) once the worker's pool and Redis are open, starts it after the worker's
    broker, and stops it in reverse."""

    def __init__(
        self,
        broker: KafkaBroker,
        publisher: KafkaPublisher,
        topics: TopicNames,
        *,
        retry_connection: dict[str, Any],
        retry_group_id: str,
        commits: OffsetCommits,
    ) -> None:
        self.broker = broker
        self.publisher = publisher
        self.topics = topics
        self._handler: SyncHandler | None = None
        self.delay_queue = DelayQueue(
            connection=retry_connection,
            topics=[topics(spec) for spec in CRM_RETRY_TOPICS],
            group_id=retry_group_id,
            handle=self.handle,
            reject=self.reject,
            commits=commits,
        )
        self.consumers = BackgroundConsumers(
            broker, name="crm_sync-ghl-consumers", companions=[self.delay_queue]
        )

    def attach(self, handler: SyncHandler) -> None:
        """Hand the subscribers and the delay queue their handler, built from open resources."""
        self._handler = handler

    @property
    def handler(self) -> SyncHandler:
        if self._handler is None:
            raise RuntimeError("the GHL sync has no handler yet")
        return self._handler

    async def handle(self, message: LaneMessage) -> None:
        """Sync one lane or delay-topic message."""
        await self.handler.handle(message)

    async def reject(self, message: LaneMessage, error: BaseException) -> None:
        """Dead-letter a message that cannot be synced (invalid, or a bug)."""
        await self.handler.failures.dead_letter(
            message, "invalid_message", describe(error), error_type=type(error).__name__
        )

    async def start(self) -> None:
        """Start the intake, lane and delay-queue consumers in the background, in parallel, and
        the release of events waiting for credentials."""
        self.consumers.start()
        self.handler.waiting.start()

    async def stop(self) -> None:
        await self.handler.waiting.stop()
        await self.consumers.stop()


def _options(resources: WorkerResources, topic: TopicSpec) -> dict[str, Any]:
    return {
        # GHL's budget (10 calls a second on the sandbox) sets the pace, not the fetch's wait.
        **consumer_options(resources, SERVICE, background=True),
        "group_id": f"{resources.settings.kafka_consumer_group_prefix}{GHL_CONSUMER}.{topic.name}",
    }


def install_ghl_sync(settings: Settings, resources: WorkerResources) -> GhlSync:
    """Subscribe the intake and lane handlers on a broker of their own; build the delay queue.
    The sync handler is attached later, once the pool and Redis are open."""
    settings.require("kafka_bootstrap_servers")
    assert settings.kafka_bootstrap_servers
    broker = create_broker(settings, client_id="jorge-crm_sync-ghl")
    install_dead_letter_policy(broker, settings, SERVICE, resources)
    publisher = KafkaPublisher(broker, settings.kafka_publish_timeout_seconds)
    topics = TopicNames(settings.kafka_topic_prefix)
    intake = IntakeHandler(publisher, topics)
    sync = GhlSync(
        broker,
        publisher,
        topics,
        retry_connection=kafka_client_options(settings),
        retry_group_id=f"{settings.kafka_consumer_group_prefix}{GHL_CONSUMER}.retry",
        commits=resources.offset_commits,
    )

    for spec in INTAKE_TOPICS:

        @broker.subscriber(topics(spec), **_options(resources, spec))
        async def on_event() -> None:
            """Forward the event to the hot or standard lane."""
            msg = current_message(broker)
            headers = text_headers(msg.headers)
            key = _key(msg.raw_message)
            try:
                await intake.forward(msg.body, headers, key)
            except INVALID_MESSAGE_ERRORS as error:
                # Kept for `jorge dlq`; re-raised so the shared policy publishes the dead letter.
                invalid = LaneMessage(msg.body, headers, key, "standard", 1)
                await sync.handler.failures.record_invalid(invalid, error)
                mark_recorded(error)  # the policy publishes it; the row is written
                raise

    for spec, lane in ((CRM_LANE_HOT, "hot"), (CRM_LANE_STANDARD, "standard")):
        _subscribe_lane(broker, resources, topics, spec, lane, sync)  # type: ignore[arg-type]

    # Declared for the AsyncAPI document; the intake and the outcomes publish through KafkaPublisher.
    for spec in (CRM_LANE_HOT, CRM_LANE_STANDARD, *CRM_RETRY_TOPICS):
        broker.publisher(topics(spec), title=f"crm_sync.{spec.name}", description=spec.description)

    return sync


def _subscribe_lane(
    broker: KafkaBroker,
    resources: WorkerResources,
    topics: TopicNames,
    spec: TopicSpec,
    lane: Priority,
    sync: GhlSync,
) -> None:
    @broker.subscriber(topics(spec), **_options(resources, spec))
    async def on_lane() -> None:
        """Write the event to GHL (retries and dead letters are the handler's business)."""
        msg = current_message(broker)
        headers = text_headers(msg.headers)
        key = _key(msg.raw_message)
        message = LaneMessage(msg.body, headers, key, lane, attempt_of(headers))
        try:
            await sync.handle(message)
        except INVALID_MESSAGE_ERRORS as error:
            await sync.handler.failures.record_invalid(message, error)
            mark_recorded(error)
            raise


def current_message(broker: KafkaBroker) -> KafkaMessage:
    """The message being handled, raw. Read from the broker's context rather than injected as a
    ``KafkaMessage`` parameter: fast_depends resolves such a parameter in a worker thread, one
    thread hop (and a task group) per message."""
    return cast(KafkaMessage, broker.context.get_local("message"))


def _key(record: Any) -> str | None:
    key = getattr(record, "key", None)
    return key.decode(errors="replace") if isinstance(key, bytes) else None
