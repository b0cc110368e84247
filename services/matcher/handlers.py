"""Matcher handlers: decode, match against the catalog, store, publish BuyerMatched, once per event."""

from __future__ import annotations

import logging

from jorge_runtime.catalog.reader import CatalogReader
from jorge_runtime.idempotency import EventLedger
from jorge_runtime.kafka.broker import KafkaPublisher, OutgoingMessage, event_message
from jorge_runtime.observability.metrics import BUYERS_MATCHED
from jorge_runtime.worker import WorkerResources
from schemas.buyers import (
    BuyerMatched,
    BuyerMatchedPayload,
    BuyerMatchRequested,
    BuyerMatchRequestedPayload,
    MatchResults,
)
from schemas.envelope import EventEnvelope, utc_now
from schemas.leads import LeadQualified
from schemas.topics import BUYER_MATCHED, TopicNames
from services.matcher.leads import LEAD_MATCH_RESULTS, lead_preferences, lead_session_id
from services.matcher.repository import MatchSessionRepository
from services.matcher.scoring import match, min_bedrooms, price_window

log = logging.getLogger(__name__)

SERVICE = "matcher"


class MatchHandler:
    """Handles match requests and qualified buyer leads; a redelivery republishes only what is owed."""

    def __init__(
        self,
        *,
        resources: WorkerResources,
        catalog: CatalogReader,
        repository: MatchSessionRepository,
        publisher: KafkaPublisher,
        topics: TopicNames,
    ) -> None:
        self._resources = resources
        self._catalog = catalog
        self._repository = repository
        self._publisher = publisher
        self._topics = topics

    async def on_match_requested(self, event: BuyerMatchRequested) -> None:
        """Run the gateway's match session."""
        await self._once(event, event.payload, None)

    async def on_lead_qualified(self, event: LeadQualified) -> None:
        """Open and run a match session for a qualified buyer lead; other leads are skipped."""
        preferences = lead_preferences(event.payload.qualification)
        if preferences is None:
            return  # not a buyer, or nothing to search with: no effect, nothing to record
        request = BuyerMatchRequestedPayload(
            match_session_id=lead_session_id(event.payload.qualification_id),
            buyer_id=event.payload.lead.lead_id,
            preferences=preferences,
            sort_by="relevance",
            max_results=LEAD_MATCH_RESULTS,
        )
        await self._once(event, request, event.payload.qualification_id)

    async def _once(
        self, event: EventEnvelope, request: BuyerMatchRequestedPayload, qualification_id: str | None
    ) -> None:
        ledger = EventLedger(
            self._resources.pool, SERVICE, self._publisher.publish, self._resources.published_marks
        )
        # A match is one catalog query: cheaper to redo on a rare redelivery than to look first.
        await ledger.handle_once(
            event.event_id,
            lambda: self._match_and_store(event, request, qualification_id, ledger),
            look_first=False,
        )

    async def _match_and_store(
        self,
        event: EventEnvelope,
        request: BuyerMatchRequestedPayload,
        qualification_id: str | None,
        ledger: EventLedger,
    ) -> list[OutgoingMessage] | None:
        preferences = request.preferences
        low, high = price_window(preferences)
        homes = await self._catalog.active_listings(
            self._resources.pool,
            event.organization_id,
            price_min=low,
            price_max=high,
            min_bedrooms=min_bedrooms(preferences),
            kinds=list(preferences.property_types),
            areas=list(preferences.neighborhoods),
        )
        result: MatchResults = match(preferences, homes, request.sort_by, request.max_results)
        completed_at = utc_now()
        matched = BuyerMatched(
            organization_id=event.organization_id,
            correlation_id=event.correlation_id,
            causation_id=event.event_id,
            payload=BuyerMatchedPayload(
                match_session_id=request.match_session_id,
                buyer_id=request.buyer_id,
                qualification_id=qualification_id,
                status="completed",
                result=result,
                completed_at=completed_at,
            ),
        )
        messages = [event_message(matched, topic=self._topics(BUYER_MATCHED), key=request.buyer_id)]
        stored = await self._repository.save_completed_once(
            ledger,
            event.event_id,
            messages,
            organization_id=event.organization_id,
            request=request,
            result=result,
            correlation_id=event.correlation_id,
            completed_at=completed_at,
            qualification_id=qualification_id,
        )
        if not stored:
            return None  # claimed before: a redelivery, or a concurrent delivery that won
        BUYERS_MATCHED.labels(outcome="matched" if result.matches else "no_matches").inc()
        log.info(
            "buyer matched",
            extra={
                "match_session_id": request.match_session_id,
                "candidates": len(homes),
                "total_matches": result.total_matches,
                "from_lead": qualification_id is not None,
            },
        )
        return messages
