"""Handlers of the events subscribers receive: each becomes one message and one due delivery
per subscribed endpoint, idempotently (a redelivered event finds its message and adds nothing).
Failed match sessions and analyses are not announced: the events say something was matched or
analysed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from jorge_runtime.observability.tracing import trace_context
from jorge_runtime.worker import WorkerResources
from schemas.buyers import BuyerMatched
from schemas.envelope import EventEnvelope
from schemas.leads import LeadQualified
from schemas.sellers import SellerAnalyzed
from schemas.webhooks import WebhookDeliveryRequested, new_message_id
from services.crm_sync.webhook_delivery.payloads import lead_qualified_data, render
from services.crm_sync.webhook_delivery.repository import DeliveryRepository

log = logging.getLogger(__name__)


class FanOut:
    """Turns events into stored webhook deliveries and wakes the dispatcher."""

    def __init__(
        self,
        *,
        resources: WorkerResources,
        repository: DeliveryRepository,
        wake: Callable[[], None],
        max_payload_bytes: int,
    ) -> None:
        self._resources = resources
        self._repository = repository
        self._wake = wake
        self._max_payload_bytes = max_payload_bytes

    async def lead_qualified(self, event: LeadQualified) -> None:
        """A qualification completed: tell the organisation's lead.qualified subscribers."""
        await self._fan_out(event, "lead.qualified", lead_qualified_data(event.payload))

    async def buyer_matched(self, event: BuyerMatched) -> None:
        """A completed match session: the session (ids, ranked homes, next actions) is the data."""
        if event.payload.status == "completed":
            await self._fan_out(event, "buyer.matched", event.payload.model_dump(mode="json"))

    async def seller_analyzed(self, event: SellerAnalyzed) -> None:
        """A completed CMA: the analysis (ids, comparables, price range) is the data."""
        if event.payload.status == "completed":
            await self._fan_out(event, "seller.analyzed", event.payload.model_dump(mode="json"))

    async def delivery_requested(self, event: WebhookDeliveryRequested) -> None:
        """A test event or a redelivery: the gateway stored it due now; just look for it."""
        self._wake()

    async def _fan_out(self, event: EventEnvelope, event_type: str, data: dict[str, Any]) -> None:
        body = render(event_type, event.occurred_at, data, self._max_payload_bytes)
        created = await self._repository.fan_out(
            self._resources.pool,
            organization_id=event.organization_id,
            event_type=event_type,
            source_event_id=event.event_id,
            message_id=new_message_id(),
            payload=body,
            # The consumer span's context: the dispatcher's attempts continue this trace.
            trace_context=trace_context(),
        )
        if created:
            log.info("webhook message stored", extra={"event": event_type, "deliveries": created})
            self._wake()
