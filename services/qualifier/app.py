"""Composition root of the qualifier worker."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from jorge_runtime.flags import FeatureFlags
from jorge_runtime.kafka.broker import KafkaPublisher, create_broker
from jorge_runtime.settings import Settings
from jorge_runtime.worker import (
    WorkerResources,
    install_dead_letter_policy,
    parallel_consumer_options,
    worker_app,
)
from schemas.leads import LeadQualificationRequested, LeadQualified
from schemas.topics import LEAD_QUALIFICATION_REQUESTED, LEAD_QUALIFIED, TopicNames
from services.qualifier.claude import ClaudeConfig, ClaudeQualificationEngine, create_client
from services.qualifier.engine import QualificationEngine
from services.qualifier.handlers import SERVICE, QualifyLeadHandler
from services.qualifier.repository import QualificationRepository
from services.qualifier.rules import RulesQualificationEngine


def configured_engine(settings: Settings, flags: FeatureFlags) -> QualificationEngine:
    """Claude when ANTHROPIC_API_KEY is set (the rules stand in when it fails), else the rules."""
    key = settings.anthropic_api_key
    if key is None or not key.get_secret_value():
        return RulesQualificationEngine()
    return ClaudeQualificationEngine(create_client(settings), ClaudeConfig.from_settings(settings), flags)


def create_app(settings: Settings, engine: QualificationEngine | None = None) -> AsgiFastStream:
    """Wire broker, resources, engine and handler; nothing connects until the app starts."""
    broker = create_broker(settings, client_id=f"jorge-{SERVICE}")
    resources = WorkerResources(settings, SERVICE)
    install_dead_letter_policy(broker, settings, SERVICE, resources)
    topics = TopicNames(settings.kafka_topic_prefix)
    flags = FeatureFlags.from_settings(settings)
    engine = engine or configured_engine(settings, flags)
    handler = QualifyLeadHandler(
        engine=engine,
        resources=resources,
        repository=QualificationRepository(settings.qualification_expires_after_days),
        publisher=KafkaPublisher(broker, settings.kafka_publish_timeout_seconds),
        topics=topics,
    )

    # Declared for the AsyncAPI document; the handler publishes through its outbox.
    broker.publisher(topics(LEAD_QUALIFIED), title="LeadQualified", schema=LeadQualified)

    # Partitions in parallel: a lead's handling is mostly waiting on PostgreSQL and Kafka.
    @broker.subscriber(topics(LEAD_QUALIFICATION_REQUESTED), **parallel_consumer_options(resources, SERVICE))
    async def on_lead_qualification_requested(event: LeadQualificationRequested) -> None:
        """Qualify a lead the gateway accepted and publish LeadQualified."""
        await handler.handle(event)

    app = worker_app(SERVICE, broker, resources)

    def announce_flags() -> None:
        flags.announce(SERVICE)

    app.on_startup(announce_flags)
    if isinstance(engine, ClaudeQualificationEngine):
        app.after_shutdown(engine.aclose)
    return app
