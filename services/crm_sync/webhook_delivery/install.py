"""Wiring of webhook delivery into the crm_sync worker: subscribers, dispatcher, lifecycle."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Protocol

from faststream.kafka import KafkaBroker

from jorge_runtime.kafka.background_consumers import BackgroundConsumers
from jorge_runtime.kafka.broker import KafkaPublisher, OutgoingMessage, create_broker
from jorge_runtime.settings import Settings
from jorge_runtime.webhook_secrets import webhook_secret_cipher
from jorge_runtime.worker import WorkerResources, consumer_options, install_dead_letter_policy
from schemas.buyers import BuyerMatched
from schemas.leads import LeadQualified
from schemas.sellers import SellerAnalyzed
from schemas.topics import (
    BUYER_MATCHED,
    LEAD_QUALIFIED,
    SELLER_ANALYZED,
    WEBHOOK_DELIVERY_REQUESTED,
    WEBHOOK_ENDPOINT_DISABLED,
    TopicNames,
    TopicSpec,
)
from schemas.webhook_urls import parse_subnets
from schemas.webhooks import WebhookDeliveryRequested, WebhookEndpointDisabled
from services.crm_sync.names import WEBHOOK_CONSUMER
from services.crm_sync.webhook_delivery.dispatcher import Dispatcher
from services.crm_sync.webhook_delivery.fanout import FanOut
from services.crm_sync.webhook_delivery.repository import DeliveryRepository
from services.crm_sync.webhook_delivery.schedule import RetryPolicy, parse_schedule
from services.crm_sync.webhook_delivery.sender import WebhookSender

_STOP_SECONDS = 3.0


class MessagePublisher(Protocol):
    """What the dispatcher needs of a publisher: KafkaPublisher, or a stand-in in tests and benchmarks."""

    async def publish(self, message: OutgoingMessage) -> None:
        """Send one message (the endpoint-disabled event)."""


class WebhookDelivery:
    """The installed engine: its own Kafka broker (consumers and the disabled-event producer)
    and the dispatcher. Start it once the worker's pool is open, stop it before it closes."""

    def __init__(self, broker: KafkaBroker, dispatcher: Dispatcher, fan_out: FanOut) -> None:
        self.broker = broker
        self.dispatcher = dispatcher
        self.fan_out = fan_out
        self.consumers = BackgroundConsumers(
            broker, name="webhook-consumers", stop_timeout_seconds=_STOP_SECONDS
        )

    async def start(self) -> None:
        """Start the dispatcher now and the consumers in the background (they join their groups
        in parallel, not one after another as a broker's start would, nor after GHL's)."""
        await self.dispatcher.encrypt_plaintext_secrets()
        await self.dispatcher.start()
        self.consumers.start()

    async def stop(self) -> None:
        """Stop consuming, then let the attempts in flight finish briefly (leases cover the rest)."""
        await self.consumers.stop()
        await self.dispatcher.stop(grace_seconds=_STOP_SECONDS)


def retry_policy(settings: Settings) -> RetryPolicy:
    """The retry schedule and limits the settings describe."""
    return RetryPolicy(
        delays=parse_schedule(settings.webhook_retry_schedule_seconds),
        jitter=settings.webhook_retry_jitter,
        throttled_min_delay=settings.webhook_throttled_min_delay_seconds,
        retry_after_max=settings.webhook_retry_after_max_seconds,
        disable_after=timedelta(seconds=settings.webhook_disable_after_seconds),
    )


def build_dispatcher(
    settings: Settings, resources: WorkerResources, publisher: MessagePublisher
) -> Dispatcher:
    """The dispatcher alone (tests and benchmarks run it in-process)."""
    topics = TopicNames(settings.kafka_topic_prefix)
    return Dispatcher(
        pool=lambda: resources.pool,
        repository=DeliveryRepository(),
        sender=WebhookSender(
            allowed=parse_subnets(settings.webhook_allowed_subnets),
            attempt_timeout=settings.webhook_attempt_timeout_seconds,
            connect_timeout=settings.webhook_connect_timeout_seconds,
            require_https=settings.webhook_require_https,
        ),
        policy=retry_policy(settings),
        publish=publisher.publish,
        disabled_topic=topics(WEBHOOK_ENDPOINT_DISABLED),
        poll_seconds=settings.webhook_dispatch_poll_seconds,
        max_in_flight=settings.webhook_max_in_flight,
        lease_seconds=settings.webhook_attempt_timeout_seconds + settings.webhook_lease_grace_seconds,
        cipher=webhook_secret_cipher(settings.crm_credentials_key),
    )


def install_webhook_delivery(
    broker: KafkaBroker, resources: WorkerResources, settings: Settings, topics: TopicNames
) -> WebhookDelivery:
    """Build the fan-out consumers (on a broker of their own) and the dispatcher.

    ``broker`` is crm_sync's main broker: it only declares the endpoint-disabled topic in the
    worker's AsyncAPI document; webhook traffic never shares a connection with GHL sync.
    """
    # httpx logs every request's URL at INFO; subscribers' URLs may carry tokens.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    own = create_broker(settings, client_id="jorge-crm_sync-webhooks")
    install_dead_letter_policy(own, settings, WEBHOOK_CONSUMER, resources)
    dispatcher = build_dispatcher(
        settings, resources, KafkaPublisher(own, settings.kafka_publish_timeout_seconds)
    )
    fan_out = FanOut(
        resources=resources,
        repository=DeliveryRepository(),
        wake=dispatcher.wake,
        max_payload_bytes=settings.webhook_max_payload_bytes,
    )

    def options(spec: TopicSpec) -> dict[str, Any]:
        # Groups `{prefix}crm_sync.webhooks.{topic}`: one per topic, so a rebalance on one topic
        # pauses no other. Leads' webhooks and the deliveries someone asked for are prompt.
        prompt = spec in (LEAD_QUALIFIED, WEBHOOK_DELIVERY_REQUESTED)
        return consumer_options(resources, f"{WEBHOOK_CONSUMER}.{spec.name}", background=not prompt)

    broker.publisher(
        topics(WEBHOOK_ENDPOINT_DISABLED), title="WebhookEndpointDisabled", schema=WebhookEndpointDisabled
    )

    @own.subscriber(topics(LEAD_QUALIFIED), **options(LEAD_QUALIFIED))
    async def webhooks_on_lead_qualified(event: LeadQualified) -> None:
        """Store a lead.qualified webhook for each subscribed endpoint."""
        await fan_out.lead_qualified(event)

    @own.subscriber(topics(BUYER_MATCHED), **options(BUYER_MATCHED))
    async def webhooks_on_buyer_matched(event: BuyerMatched) -> None:
        """Store a buyer.matched webhook for each subscribed endpoint."""
        await fan_out.buyer_matched(event)

    @own.subscriber(topics(SELLER_ANALYZED), **options(SELLER_ANALYZED))
    async def webhooks_on_seller_analyzed(event: SellerAnalyzed) -> None:
        """Store a seller.analyzed webhook for each subscribed endpoint."""
        await fan_out.seller_analyzed(event)

    @own.subscriber(topics(WEBHOOK_DELIVERY_REQUESTED), **options(WEBHOOK_DELIVERY_REQUESTED))
    async def webhooks_on_delivery_requested(event: WebhookDeliveryRequested) -> None:
        """Send a test event or a redelivery the gateway stored, now."""
        await fan_out.delivery_requested(event)

    return WebhookDelivery(own, dispatcher, fan_out)
