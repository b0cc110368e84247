"""Seller analyzer handler: place the home in its market, price it, store, publish SellerAnalyzed.

A home that cannot be priced (implausible, not placeable, no sales) is a result too: the
analysis is stored as failed with the reason and published, never dead-lettered.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta

from jorge_runtime.catalog.reader import CatalogReader
from jorge_runtime.idempotency import EventLedger
from jorge_runtime.kafka.broker import KafkaPublisher, OutgoingMessage, event_message
from jorge_runtime.observability.metrics import SELLERS_ANALYZED
from jorge_runtime.worker import WorkerResources
from schemas.catalog import CatalogProperty
from schemas.envelope import utc_now
from schemas.sellers import (
    SellerAnalysisRequested,
    SellerAnalysisResult,
    SellerAnalyzed,
    SellerAnalyzedPayload,
)
from schemas.topics import SELLER_ANALYZED, TopicNames
from services.seller_analyzer.cma import CmaError, analyze, check_subject
from services.seller_analyzer.comparables import (
    SEARCH_STEPS,
    Subject,
    city_from_address,
    street_of,
    subject_from,
)
from services.seller_analyzer.repository import SellerAnalysisRepository

log = logging.getLogger(__name__)

SERVICE = "seller_analyzer"
#: How far back sales are read: the widest search step (regression uses them all).
SALES_MONTHS = SEARCH_STEPS[-1].months


@dataclass(frozen=True, slots=True)
class Market:
    """The market area a home was placed in and its closed sales."""

    name: str
    city: str | None
    postal_code: str | None
    sales: list[CatalogProperty]


class AnalyzeHandler:
    """Handles SellerAnalysisRequested; a redelivery republishes only what is still owed."""

    def __init__(
        self,
        *,
        resources: WorkerResources,
        catalog: CatalogReader,
        repository: SellerAnalysisRepository,
        publisher: KafkaPublisher,
        topics: TopicNames,
    ) -> None:
        self._resources = resources
        self._catalog = catalog
        self._repository = repository
        self._publisher = publisher
        self._topics = topics

    async def handle(self, event: SellerAnalysisRequested) -> None:
        """Price the home once; store the outcome and SellerAnalyzed in one statement."""
        ledger = EventLedger(
            self._resources.pool, SERVICE, self._publisher.publish, self._resources.published_marks
        )
        await ledger.handle_once(event.event_id, lambda: self._analyze_and_store(event, ledger))

    async def _market(self, organization_id: str, subject: Subject, since: date) -> Market:
        pool = self._resources.pool
        tried: list[str] = []
        cities = [subject.city, city_from_address(subject.address)]
        for city in dict.fromkeys(c for c in cities if c):
            tried.append(city)
            sales = await self._catalog.closed_sales(pool, organization_id, since=since, city=city)
            if sales:
                return Market(city, city, None, sales)
        if subject.postal_code:
            tried.append(f"postal code {subject.postal_code}")
            sales = await self._catalog.closed_sales(
                pool, organization_id, since=since, postal_code=subject.postal_code
            )
            if sales:
                return Market(f"postal code {subject.postal_code}", None, subject.postal_code, sales)
        if subject.latitude is not None and subject.longitude is not None:
            near = await self._catalog.nearest_city(
                pool, organization_id, subject.latitude, subject.longitude
            )
            if near:
                sales = await self._catalog.closed_sales(pool, organization_id, since=since, city=near)
                return Market(near, near, None, sales)
            tried.append("within 10 km of the coordinates")
        if not tried:
            raise CmaError(
                "unknown_market",
                "Cannot place the home in a market: the address names no city and neither city, "
                "postal_code nor latitude/longitude was given.",
            )
        raise CmaError(
            "no_sales",
            f"No closed sales in the catalog for {' or '.join(tried)} in the last {SALES_MONTHS} "
            "months: nothing to compare the home with.",
        )

    async def _price(self, event: SellerAnalysisRequested, today: date) -> SellerAnalysisResult:
        home = event.payload.property
        pool = self._resources.pool
        record = await self._catalog.find_by_street(
            pool,
            event.organization_id,
            street_of(home.property_address),
            home.city or city_from_address(home.property_address),
        )
        subject = subject_from(home, record)
        check_subject(subject, today)
        since = today - timedelta(days=round(SALES_MONTHS * 30.44))
        market = await self._market(event.organization_id, subject, since)
        active = await self._catalog.active_count(
            pool, event.organization_id, city=market.city, postal_code=market.postal_code
        )
        result = analyze(subject, market.sales, active, today, market.name)
        found = "found in the catalog" if record else "not in the catalog: described by the seller only"
        result.cma.market_analysis["subject"] = found
        return result

    async def _analyze_and_store(
        self, event: SellerAnalysisRequested, ledger: EventLedger
    ) -> list[OutgoingMessage] | None:
        request = event.payload
        result: SellerAnalysisResult | None = None
        failure: CmaError | None = None
        try:
            result = await self._price(event, utc_now().date())
        except CmaError as error:  # a home that cannot be priced is a result; anything else propagates
            failure = error
        completed_at = utc_now()
        reason = f"{failure.code}: {failure.message}" if failure else None
        analyzed = SellerAnalyzed(
            organization_id=event.organization_id,
            correlation_id=event.correlation_id,
            causation_id=event.event_id,
            payload=SellerAnalyzedPayload(
                analysis_id=request.analysis_id,
                seller_id=request.seller_id,
                status="completed" if result else "failed",
                result=result,
                failure_reason=reason,
                completed_at=completed_at,
            ),
        )
        messages = [event_message(analyzed, topic=self._topics(SELLER_ANALYZED), key=request.seller_id)]
        stored = await self._repository.save_once(
            ledger,
            event.event_id,
            messages,
            organization_id=event.organization_id,
            request=request,
            result=result,
            failure_reason=reason,
            correlation_id=event.correlation_id,
            completed_at=completed_at,
        )
        if not stored:
            return None  # claimed before: a redelivery, or a concurrent delivery that won
        SELLERS_ANALYZED.labels(outcome=failure.code if failure else "completed").inc()
        log.info(
            "seller analyzed",
            extra={
                "analysis_id": request.analysis_id,
                "outcome": failure.code if failure else "completed",
                "mid": result.cma.price_recommendation.mid if result else None,
            },
        )
        return messages
