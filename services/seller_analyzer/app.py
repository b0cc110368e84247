"""Composition root of the seller_analyzer worker."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from jorge_runtime.catalog.reader import CatalogReader
from jorge_runtime.kafka.broker import KafkaPublisher, create_broker
from jorge_runtime.settings import Settings
from jorge_runtime.worker import WorkerResources, consumer_options, install_dead_letter_policy, worker_app
from schemas.sellers import SellerAnalysisRequested, SellerAnalyzed
from schemas.topics import SELLER_ANALYSIS_REQUESTED, SELLER_ANALYZED, TopicNames
from services.seller_analyzer.handlers import SERVICE, AnalyzeHandler
from services.seller_analyzer.repository import SellerAnalysisRepository


def create_app(settings: Settings) -> AsgiFastStream:
    """Wire broker, resources, catalog and handler; nothing connects until the app starts."""
    broker = create_broker(settings, client_id=f"jorge-{SERVICE}")
    resources = WorkerResources(settings, SERVICE)
    install_dead_letter_policy(broker, settings, SERVICE, resources)
    topics = TopicNames(settings.kafka_topic_prefix)
    handler = AnalyzeHandler(
        resources=resources,
        catalog=CatalogReader(),
        repository=SellerAnalysisRepository(),
        publisher=KafkaPublisher(broker, settings.kafka_publish_timeout_seconds),
        topics=topics,
    )

    # Declared for the AsyncAPI document; the handler publishes through its outbox.
    broker.publisher(topics(SELLER_ANALYZED), title="SellerAnalyzed", schema=SellerAnalyzed)

    @broker.subscriber(topics(SELLER_ANALYSIS_REQUESTED), **consumer_options(resources, SERVICE))
    async def on_seller_analysis_requested(event: SellerAnalysisRequested) -> None:
        """Price a seller's home (a CMA) and publish SellerAnalyzed."""
        await handler.handle(event)

    return worker_app(SERVICE, broker, resources)
