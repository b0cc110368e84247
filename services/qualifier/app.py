"""Composition root of the qualifier worker."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from jorge_runtime.broker import KafkaPublisher, create_broker
from jorge_runtime.settings import Settings
from jorge_runtime.worker import (
    WorkerResources,
    consumer_options,
    install_dead_letter_policy,
    worker_app,
)
from schemas.leads import LeadQualificationRequested, LeadQualified
from schemas.topics import LEAD_QUALIFICATION_REQUESTED, LEAD_QUALIFIED, TopicNames
from services.qualifier.engine import QualificationEngine
from services.qualifier.handlers import SERVICE, QualifyLeadHandler
from services.qualifier.repository import QualificationRepository
from services.qualifier.rules import RulesQualificationEngine


def create_app(settings: Settings, engine: QualificationEngine | None = None) -> AsgiFastStream:
    """Wire broker, resources, engine and handler; nothing connects until the app starts."""
    broker = create_broker(settings, client_id=f"jorge-{SERVICE}")
    install_dead_letter_policy(broker, settings, SERVICE)
    resources = WorkerResources(settings)
    topics = TopicNames(settings.kafka_topic_prefix)
    handler = QualifyLeadHandler(
        engine=engine or RulesQualificationEngine(),
        resources=resources,
        repository=QualificationRepository(settings.qualification_expires_after_days),
        publisher=KafkaPublisher(broker, settings.kafka_publish_timeout_seconds),
        topics=topics,
    )

    # Declared for the AsyncAPI document; the handler publishes through its outbox.
    broker.publisher(topics(LEAD_QUALIFIED), title="LeadQualified", schema=LeadQualified)

    @broker.subscriber(topics(LEAD_QUALIFICATION_REQUESTED), **consumer_options(settings, SERVICE))
    async def on_lead_qualification_requested(event: LeadQualificationRequested) -> None:
        """Qualify a lead the gateway accepted and publish LeadQualified."""
        await handler.handle(event)

    return worker_app(SERVICE, broker, resources)
