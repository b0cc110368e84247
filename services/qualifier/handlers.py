"""Qualifier handler: decode, qualify, store, publish LeadQualified, exactly once per event."""

from __future__ import annotations

import logging

from jorge_runtime.idempotency import EventLedger
from jorge_runtime.kafka.broker import KafkaPublisher, OutgoingMessage, event_message
from jorge_runtime.observability.metrics import LEADS_QUALIFIED
from jorge_runtime.worker import WorkerResources
from schemas.envelope import utc_now
from schemas.leads import LeadQualificationRequested, LeadQualified, LeadQualifiedPayload
from schemas.topics import LEAD_QUALIFIED, TopicNames
from services.qualifier.engine import QualificationEngine
from services.qualifier.repository import QualificationRepository

log = logging.getLogger(__name__)

SERVICE = "qualifier"


class QualifyLeadHandler:
    """Handles LeadQualificationRequested; a redelivery republishes only what is still owed."""

    def __init__(
        self,
        *,
        engine: QualificationEngine,
        resources: WorkerResources,
        repository: QualificationRepository,
        publisher: KafkaPublisher,
        topics: TopicNames,
    ) -> None:
        self._engine = engine
        self._resources = resources
        self._repository = repository
        self._publisher = publisher
        self._topics = topics

    async def handle(self, event: LeadQualificationRequested) -> None:
        """Qualify the lead once; store the result and LeadQualified in one statement."""
        ledger = EventLedger(
            self._resources.pool, SERVICE, self._publisher.publish, self._resources.published_marks
        )
        await ledger.handle_once(
            event.event_id, lambda: self._qualify_and_store(event, ledger), look_first=self._engine.costly
        )

    async def _qualify_and_store(
        self, event: LeadQualificationRequested, ledger: EventLedger
    ) -> list[OutgoingMessage] | None:
        lead = event.payload.lead
        qualification = await self._engine.qualify(lead)
        completed_at = utc_now()
        qualified = LeadQualified(
            organization_id=event.organization_id,
            correlation_id=event.correlation_id,
            causation_id=event.event_id,
            payload=LeadQualifiedPayload(
                qualification_id=event.payload.qualification_id,
                lead=lead,
                qualification=qualification,
                completed_at=completed_at,
            ),
        )
        messages = [event_message(qualified, topic=self._topics(LEAD_QUALIFIED), key=lead.lead_id)]
        stored = await self._repository.save_completed_once(
            ledger,
            event.event_id,
            messages,
            organization_id=event.organization_id,
            qualification_id=event.payload.qualification_id,
            lead=lead,
            qualification=qualification,
            correlation_id=event.correlation_id,
            completed_at=completed_at,
        )
        if not stored:
            return None  # claimed before: a redelivery, or a concurrent delivery that won
        LEADS_QUALIFIED.labels(
            qualification.engine, qualification.intent.value, qualification.temperature.value
        ).inc()
        log.info(
            "lead qualified",
            extra={
                "qualification_id": event.payload.qualification_id,
                "engine": qualification.engine,
                "model": qualification.model,
                "fallback_reason": qualification.fallback_reason,
                "cost_usd": qualification.usage.cost_usd if qualification.usage else None,
                "intent": qualification.intent.value,
                "temperature": qualification.temperature.value,
            },
        )
        return messages
