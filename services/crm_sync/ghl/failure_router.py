"""Where a failed CRM write goes: the next delay topic, or the dead letters (topic and table).
Invalid messages are recorded in the table too, so `jorge dlq list` shows every dead letter."""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import UTC, datetime

import asyncpg

from jorge_runtime.kafka.broker import KafkaPublisher, OutgoingMessage
from jorge_runtime.kafka.error_policy import describe
from jorge_runtime.observability.metrics import DEAD_LETTERED, MESSAGES_PROCESSED
from schemas.topics import CRM_RETRY_TOPICS, DEAD_LETTER, TopicNames
from services.crm_sync.ghl.budget import Priority
from services.crm_sync.ghl.client import GhlError
from services.crm_sync.ghl.events import AnyEvent
from services.crm_sync.ghl.lane_message import LaneMessage
from services.crm_sync.ghl.repository import CrmRepository
from services.crm_sync.ghl.retry_schedule import (
    ATTEMPT_HEADER,
    DUE_AT_HEADER,
    LANE_HEADER,
    LAST_ERROR_HEADER,
    NOT_BEFORE_HEADER,
    QUEUED_HEADER,
    next_retry,
    queued_header,
)
from services.crm_sync.names import SERVICE

log = logging.getLogger(__name__)


def _event_id(body: bytes, headers: dict[str, str]) -> uuid.UUID | None:
    """The event id an invalid message claims (body, else headers), if it is a valid uuid."""
    try:
        raw = json.loads(body).get("event_id")
    except (ValueError, AttributeError):
        raw = None
    for candidate in (raw, headers.get("event-id")):
        try:
            return uuid.UUID(str(candidate))
        except ValueError:
            continue
    return None


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

    async def retry(self, message: LaneMessage, error: Exception, event: AnyEvent) -> None:
        """Publish the message to the delay topic of its next attempt, or dead-letter it when the
        retries are spent."""
        step = next_retry(message.attempt, self._delays, self._max_attempts)
        if step is None:
            await self.dead_letter(message, "retries_exhausted", str(error), event=event)
            return
        due_ms = int((time.time() + step.delay_seconds) * 1000)
        retry_headers = {
            **message.headers,
            ATTEMPT_HEADER: str(step.attempt),
            DUE_AT_HEADER: str(due_ms),
            LANE_HEADER: message.lane,
            LAST_ERROR_HEADER: str(error)[:200],
        }
        topic = self._topics(CRM_RETRY_TOPICS[step.tier])
        await self._publisher.publish(
            OutgoingMessage(str(event.event_id), topic, message.key, message.body, retry_headers)
        )
        MESSAGES_PROCESSED.labels(SERVICE, event.event_type, "retried").inc()
        log.info(
            "crm write scheduled for retry",
            extra={
                "event_id": str(event.event_id),
                "error": str(error)[:200],
                "status": error.status if isinstance(error, GhlError) else None,
                "attempt": message.attempt,
                "retry_in_seconds": step.delay_seconds,
            },
        )

    def turn_window_ms(self) -> int:
        """How early a parked event may come back and still take its turn: the shortest delay
        (parking it again could only bring it back later than its turn)."""
        return int(self._delays[0] * 1000)

    async def park(
        self,
        message: LaneMessage,
        wait_ms: int,
        event: AnyEvent,
        *,
        queued: tuple[str, Priority, int] | None = None,
        outcome: str = "parked",
    ) -> None:
        """Send the event to the delay topic with the longest delay not past ``wait_ms`` (it is
        parked again, at little cost, if it comes back early), keeping its attempt number:
        waiting for GHL's budget is not a failure. ``queued``: the location, priority and calls
        it now counts in that location's queue (see GhlBudget.join_queue); without it, the
        message keeps what it counted (parked again before its turn)."""
        tier = max(
            [0, *(i for i, d in enumerate(self._delays[: len(CRM_RETRY_TOPICS)]) if d * 1000 <= wait_ms)]
        )
        delay = self._delays[tier]
        now = time.time()
        parked_headers = {
            **message.headers,
            ATTEMPT_HEADER: str(message.attempt),
            DUE_AT_HEADER: str(int((now + delay) * 1000)),
            LANE_HEADER: message.lane,
        }
        if queued is not None:
            parked_headers[NOT_BEFORE_HEADER] = str(int(now * 1000) + wait_ms)
            parked_headers[QUEUED_HEADER] = queued_header(*queued)
            parked_headers[LAST_ERROR_HEADER] = f"GHL budget spent for {wait_ms} ms"
        topic = self._topics(CRM_RETRY_TOPICS[tier])
        await self._publisher.publish(
            OutgoingMessage(str(event.event_id), topic, message.key, message.body, parked_headers)
        )
        MESSAGES_PROCESSED.labels(SERVICE, event.event_type, outcome).inc()

    async def dead_letter(
        self,
        message: LaneMessage,
        reason: str,
        detail: str,
        *,
        event: AnyEvent | None = None,
        error_type: str | None = None,
    ) -> None:
        """Record in crm_dead_letters (once per open event) and publish to the dead-letter topic."""
        body, key, attempts = message.body, message.key, message.attempt
        clean = {k: v for k, v in message.headers.items() if not k.startswith(("crm-", "dlq-"))}
        await self._repository.add_dead_letter(
            self._pool,
            organization_id=event.organization_id if event else clean.get("organization-id"),
            event_id=event.event_id if event else None,
            event_type=event.event_type if event else clean.get("event-type"),
            message_key=key,
            lane=message.lane,
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

    async def record_invalid(self, message: LaneMessage, error: BaseException) -> None:
        """Store an invalid message in crm_dead_letters (reason ``invalid_message``, the raw body)
        without publishing it: the shared dead-letter middleware publishes it to the topic when
        the caller re-raises. The detail names the problem, never the payload's values."""
        clean = {k: v for k, v in message.headers.items() if not k.startswith(("crm-", "dlq-"))}
        await self._repository.add_dead_letter(
            self._pool,
            organization_id=clean.get("organization-id"),
            event_id=_event_id(message.body, clean),
            event_type=clean.get("event-type"),
            message_key=message.key,
            lane=message.lane,
            reason="invalid_message",
            detail=describe(error),
            attempts=1,
            headers=clean,
            body=message.body,
        )
