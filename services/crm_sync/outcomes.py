"""Where a failed CRM write goes: the next delay topic, or the dead letters (topic and table)."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
from pydantic import BaseModel, ConfigDict

from jorge_runtime.broker import KafkaPublisher, OutgoingMessage
from jorge_runtime.metrics import DEAD_LETTERED, MESSAGES_PROCESSED
from schemas.topics import CRM_RETRY_TOPICS, DEAD_LETTER, TopicNames
from services.crm_sync.budget import Priority
from services.crm_sync.ghl_client import GhlError
from services.crm_sync.repository import CrmRepository
from services.crm_sync.retry_schedule import (
    ATTEMPT_HEADER,
    DUE_AT_HEADER,
    LANE_HEADER,
    LAST_ERROR_HEADER,
    next_retry,
)

log = logging.getLogger(__name__)

SERVICE = "crm_sync"


class AnyEvent(BaseModel):
    """The envelope fields crm_sync needs from any event, whatever its payload's version."""

    model_config = ConfigDict(extra="ignore")

    event_id: uuid.UUID
    event_type: str
    organization_id: str
    payload: dict[str, Any]


class FailureRouter:
    """Republishes transient failures to the delay topics; records permanent ones."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        repository: CrmRepository,
        publisher: KafkaPublisher,
        topics: TopicNames,
        delays: tuple[float, ...],
        max_attempts: int,
    ) -> None:
        self._pool = pool
        self._repository = repository
        self._publisher = publisher
        self._topics = topics
        self._delays = delays
        self._max_attempts = max_attempts

    async def retry(
        self,
        body: bytes,
        headers: dict[str, str],
        key: str | None,
        lane: Priority,
        attempt: int,
        error: Exception,
        event: AnyEvent,
    ) -> None:
        step = next_retry(attempt, self._delays, self._max_attempts)
        if step is None:
            await self.dead_letter(
                body, headers, key, lane, attempt, "retries_exhausted", str(error), event=event
            )
            return
        due_ms = int((time.time() + step.delay_seconds) * 1000)
        retry_headers = {
            **headers,
            ATTEMPT_HEADER: str(step.attempt),
            DUE_AT_HEADER: str(due_ms),
            LANE_HEADER: lane,
            LAST_ERROR_HEADER: str(error)[:200],
        }
        topic = self._topics(CRM_RETRY_TOPICS[step.tier])
        await self._publisher.publish(OutgoingMessage(str(event.event_id), topic, key, body, retry_headers))
        MESSAGES_PROCESSED.labels(SERVICE, event.event_type, "retried").inc()
        log.info(
            "crm write scheduled for retry",
            extra={
                "event_id": str(event.event_id),
                "error": str(error)[:200],
                "status": error.status if isinstance(error, GhlError) else None,
                "attempt": attempt,
                "retry_in_seconds": step.delay_seconds,
            },
        )

    async def dead_letter(
        self,
        body: bytes,
        headers: dict[str, str],
        key: str | None,
        lane: str,
        attempts: int,
        reason: str,
        detail: str,
        *,
        event: AnyEvent | None = None,
        error_type: str | None = None,
    ) -> None:
        """Record in crm_dead_letters (once per open event) and publish to the dead-letter topic."""
        clean = {k: v for k, v in headers.items() if not k.startswith(("crm-", "dlq-"))}
        await self._repository.add_dead_letter(
            self._pool,
            organization_id=event.organization_id if event else clean.get("organization-id"),
            event_id=event.event_id if event else None,
            event_type=event.event_type if event else clean.get("event-type"),
            message_key=key,
            lane=lane,
            reason=reason,
            detail=detail,
            attempts=attempts,
            headers=clean,
            body=body,
        )
        dlq_headers = {
            **clean,
            "dlq-reason": f"{reason}: {detail}"[:1000],
            "dlq-error-type": error_type or reason,
            "dlq-consumer": SERVICE,
            "dlq-attempts": str(attempts),
            "dlq-failed-at": datetime.now(UTC).isoformat(),
        }
        dead_letter_topic = self._topics(DEAD_LETTER)
        message_id = str(event.event_id) if event else str(uuid.uuid4())
        await self._publisher.publish(OutgoingMessage(message_id, dead_letter_topic, key, body, dlq_headers))
        DEAD_LETTERED.labels(SERVICE, reason).inc()
        MESSAGES_PROCESSED.labels(SERVICE, event.event_type if event else "unknown", "dead_lettered").inc()
        log.warning(
            "crm write dead-lettered",
            extra={
                "reason": reason,
                "detail": detail[:300],
                "event_id": str(event.event_id) if event else None,
                "organization_id": event.organization_id if event else None,
                "attempts": attempts,
            },
        )
