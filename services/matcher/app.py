"""Composition root of the matcher worker."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from jorge_runtime.catalog.reader import CatalogReader
from jorge_runtime.kafka.broker import KafkaPublisher, create_broker
from jorge_runtime.settings import Settings
from jorge_runtime.worker import WorkerResources, consumer_options, install_dead_letter_policy, worker_app
from schemas.buyers import BuyerMatched, BuyerMatchRequested
from schemas.leads import LeadQualified
from schemas.topics import BUYER_MATCH_REQUESTED, BUYER_MATCHED, LEAD_QUALIFIED, TopicNames
from services.matcher.handlers import SERVICE, MatchHandler
from services.matcher.repository import MatchSessionRepository


def create_app(settings: Settings) -> AsgiFastStream:
    """Wire broker, resources, catalog and handlers; nothing connects until the app starts."""
    broker = create_broker(settings, client_id=f"jorge-{SERVICE}")
    resources = WorkerResources(settings, SERVICE)
    install_dead_letter_policy(broker, settings, SERVICE, resources)
    topics = TopicNames(settings.kafka_topic_prefix)
    handler = MatchHandler(
        resources=resources,
        catalog=CatalogReader(),
        repository=MatchSessionRepository(),
        publisher=KafkaPublisher(broker, settings.kafka_publish_timeout_seconds),
        topics=topics,
    )

    # Declared for the AsyncAPI document; the handler publishes through its outbox.
    broker.publisher(topics(BUYER_MATCHED), title="BuyerMatched", schema=BuyerMatched)

    @broker.subscriber(topics(BUYER_MATCH_REQUESTED), **consumer_options(resources, SERVICE))
    async def on_buyer_match_requested(event: BuyerMatchRequested) -> None:
        """Rank the catalog's homes for a buyer and publish BuyerMatched."""
        await handler.on_match_requested(event)

    # A group of its own per topic: the two subscriptions never rebalance each other.
    @broker.subscriber(
        topics(LEAD_QUALIFIED), **consumer_options(resources, f"{SERVICE}.leads", background=True)
    )
    async def on_lead_qualified(event: LeadQualified) -> None:
        """Recommend homes to a qualified buyer lead and publish BuyerMatched."""
        await handler.on_lead_qualified(event)

    return worker_app(SERVICE, broker, resources)
