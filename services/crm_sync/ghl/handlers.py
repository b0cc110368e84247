"""crm_sync handlers: intake sorts events into priority lanes; the sync handler writes them to
GHL once, schedules transient failures on the delay topics and dead-letters permanent ones."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from typing import Any

import asyncpg

from jorge_runtime.credential_cipher import CredentialsUnreadable
from jorge_runtime.idempotency import EventLedger
from jorge_runtime.kafka.broker import KafkaPublisher, OutgoingMessage
from jorge_runtime.observability.metrics import MESSAGES_PROCESSED
from schemas.buyers import BuyerMatched
from schemas.leads import LeadQualified
from schemas.sellers import ConsultationRequested, SellerAnalyzed
from schemas.topics import CRM_LANE_HOT, CRM_LANE_STANDARD, TopicNames
from services.crm_sync.ghl.budget import BudgetSpent, GhlBudget, Priority
from services.crm_sync.ghl.client import (
    GhlCredentials,
    GhlRejectedError,
    GhlScopeError,
    GhlTransientError,
    GhlUnauthorizedError,
)
from services.crm_sync.ghl.credential_resolver import CredentialResolver
from services.crm_sync.ghl.events import AnyEvent
from services.crm_sync.ghl.failure_router import FailureRouter
from services.crm_sync.ghl.lane_message import LaneMessage
from services.crm_sync.ghl.mapping import (
    CrmPlan,
    buyer_matched_plan,
    consultation_plan,
    lane_of_lead,
    lead_qualified_plan,
    seller_analyzed_plan,
)
from services.crm_sync.ghl.repository import CrmRepository, PersonBusy
from services.crm_sync.ghl.retry_schedule import (
    LANE_HEADER,
    early_by_ms,
    queued_calls,
    without_queue_headers,
)
from services.crm_sync.ghl.waiting_room import WaitingRoom
from services.crm_sync.ghl.writer import CrmWriter, NoContactDetails
from services.crm_sync.names import GHL_CONSUMER, SERVICE

log = logging.getLogger(__name__)


def text_headers(raw: Any) -> dict[str, str]:
    """Kafka headers (a mapping or a list of pairs, bytes or str) as text."""
    items = raw.items() if hasattr(raw, "items") else (raw or [])
    return {k: v.decode(errors="replace") if isinstance(v, bytes) else str(v) for k, v in items}


class IntakeHandler:
    """Validates an incoming event and forwards it, as it came, to its priority lane."""

    def __init__(self, publisher: KafkaPublisher, topics: TopicNames) -> None:
        self._publisher = publisher
        self._topics = topics

    async def forward(self, body: bytes, headers: dict[str, str], key: str | None) -> Priority:
        """Decide the lane from the event itself and publish it there; return the lane."""
        event = AnyEvent.model_validate_json(body)
        lane: Priority = "standard"
        if event.event_type == LeadQualified.EVENT_TYPE:
            lane = lane_of_lead(LeadQualified.model_validate_json(body).payload.qualification)
        elif event.event_type == ConsultationRequested.EVENT_TYPE:
            ConsultationRequested.model_validate_json(body)
            lane = "hot"
        topic = self._topics(CRM_LANE_HOT if lane == "hot" else CRM_LANE_STANDARD)
        await self._publisher.publish(
            OutgoingMessage(str(event.event_id), topic, key, body, {**headers, LANE_HEADER: lane})
        )
        return lane


class SyncHandler:
    """Writes one event to the organisation's GHL location, exactly once in effect."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        publisher: KafkaPublisher,
        resolver: CredentialResolver,
        writer: CrmWriter,
        budget: GhlBudget,
        repository: CrmRepository,
        failures: FailureRouter,
        waiting: WaitingRoom,
        custom_fields: Mapping[str, str],
    ) -> None:
        self._pool = pool
        self._publisher = publisher
        self.resolver = resolver
        self._writer = writer
        self._budget = budget
        self.repository = repository
        self.failures = failures
        self.waiting = waiting
        self._custom_fields = custom_fields
        self._unconfigured: set[str] = set()

    async def handle(self, message: LaneMessage) -> None:
        """Sync one event; transient failures go to a delay topic, permanent ones to dead letters.
        Infrastructure errors (PostgreSQL, Redis, Kafka) propagate: the caller redelivers."""
        event = AnyEvent.model_validate_json(message.body)
        early_ms = early_by_ms(message.headers, int(time.time() * 1000))
        if early_ms > self.failures.turn_window_ms():
            # Parked on a spent budget and back before its turn: parked again, nothing else read.
            await self.failures.park(message, early_ms, event, outcome="parked_until_turn")
            return
        queued = queued_calls(message.headers)
        if queued is not None:
            await self._budget.leave_queue(*queued)
            message = dataclasses.replace(message, headers=without_queue_headers(message.headers))
        ledger = EventLedger(self._pool, GHL_CONSUMER, self._publisher.publish)
        if await ledger.outstanding(event.event_id) is not None:
            MESSAGES_PROCESSED.labels(SERVICE, event.event_type, "duplicate").inc()
            return
        try:
            credentials = await self.resolver.resolve(event.organization_id)
        except GhlTransientError as error:  # GHL's token endpoint did not answer: later
            await self.failures.retry(message, error, event)
            return
        except CredentialsUnreadable as error:
            # A configuration problem of this organisation: keep the event for a replay once fixed.
            log.error(
                "the organisation's stored GHL credentials cannot be read: %s; fix CRM_CREDENTIALS_KEY "
                "or `jorge crm credentials set` them, then `jorge dlq replay --reason "
                "crm_credentials_unreadable`",
                error,
                extra={"organization_id": event.organization_id},
            )
            await self.failures.dead_letter(message, "crm_credentials_unreadable", str(error), event=event)
            return
        if credentials is None:
            # Not the event's fault: kept until the organisation has credentials (waiting_room.py).
            await self.waiting.park(
                str(event.event_id),
                event.organization_id,
                event.event_type,
                message.lane,
                message.key,
                message.headers,
                message.body,
            )
            if event.organization_id not in self._unconfigured:
                self._unconfigured.add(event.organization_id)
                log.warning(
                    "no GHL credentials for this organisation (`jorge crm credentials set`, or "
                    "GHL_ORGANIZATION for the global GHL_TOKEN); its events are kept until then",
                    extra={"organization_id": event.organization_id},
                )
            MESSAGES_PROCESSED.labels(SERVICE, event.event_type, "waiting").inc()
            return
        outcome = "ok"
        plan: CrmPlan | None = None
        try:
            plan = await self._plan(event, message.body, credentials)
            if plan is None:
                outcome = "skipped"
            else:
                contact_id = await self._writer.apply(
                    event.event_id, event.organization_id, credentials, plan, event.occurred_at
                )
                log.info(
                    "crm synced",
                    extra={
                        "event_type": event.event_type,
                        "event_id": str(event.event_id),
                        "organization_id": event.organization_id,
                        "location_id": credentials.location_id,
                        "contact_id": contact_id,
                        "attempt": message.attempt,
                    },
                )
        except NoContactDetails:
            outcome = "skipped"
        except BudgetSpent as spent:
            calls = plan.expected_calls if plan is not None else 1
            priority = plan.priority if plan is not None else message.lane
            wait_ms = await self._budget.join_queue(spent.location, priority, calls, spent.wait_ms)
            if queued is not None:  # its turn came and others took the budget meanwhile: it stays at the head
                wait_ms = spent.wait_ms
            await self.failures.park(message, wait_ms, event, queued=(spent.location, priority, calls))
            return
        except (GhlTransientError, PersonBusy) as error:
            await self.failures.retry(message, error, event)
            return
        except GhlScopeError as error:
            log.error(
                "the organisation's GHL token lacks a scope (%s); grant it to the app or token, then "
                "`jorge dlq replay --reason ghl_scope_missing`",
                error.scope,
                extra={"organization_id": event.organization_id, "location_id": credentials.location_id},
            )
            await self.failures.dead_letter(message, "ghl_scope_missing", str(error), event=event)
            return
        except GhlUnauthorizedError as error:
            log.error(
                "GHL rejected the organisation's credentials; fix them, then `jorge dlq replay --reason "
                "ghl_unauthorized`",
                extra={"organization_id": event.organization_id, "location_id": credentials.location_id},
            )
            await self.failures.dead_letter(message, "ghl_unauthorized", str(error), event=event)
            return
        except GhlRejectedError as error:
            await self.failures.dead_letter(message, "ghl_rejected", str(error), event=event)
            return
        async with self._pool.acquire() as conn, conn.transaction():
            await ledger.record(conn, event.event_id, [])
        MESSAGES_PROCESSED.labels(SERVICE, event.event_type, outcome).inc()

    async def _plan(self, event: AnyEvent, body: bytes, credentials: GhlCredentials) -> CrmPlan | None:
        repo = self.repository
        org = event.organization_id
        event_id = str(event.event_id)
        if event.event_type == LeadQualified.EVENT_TYPE:
            qualified = LeadQualified.model_validate_json(body)
            return lead_qualified_plan(
                qualified, self._custom_fields, opportunities=bool(credentials.pipeline_id)
            )
        if event.event_type == ConsultationRequested.EVENT_TYPE:
            return consultation_plan(event_id, ConsultationRequested.model_validate_json(body).payload)
        if event.event_type == BuyerMatched.EVENT_TYPE:
            matched = BuyerMatched.model_validate_json(body).payload
            if matched.status != "completed" or matched.result is None:
                return None
            contact = await repo.known_contact(org, matched.buyer_id)
            return buyer_matched_plan(
                event_id, matched.buyer_id, contact, matched.result.model_dump(mode="json")
            )
        if event.event_type == SellerAnalyzed.EVENT_TYPE:
            analyzed = SellerAnalyzed.model_validate_json(body).payload
            if analyzed.status != "completed" or analyzed.result is None:
                return None
            contact = await repo.known_contact(org, analyzed.seller_id)
            address = await repo.seller_address(org, analyzed.analysis_id)
            result = analyzed.result.model_dump(mode="json")
            return seller_analyzed_plan(event_id, analyzed.seller_id, contact, address, result)
        log.warning("event type crm_sync does not sync", extra={"event_type": event.event_type})
        return None
