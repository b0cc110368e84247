"""The delay-topic consumer: delivers each retried event when it is due, without busy loops.

Each delay topic holds messages with one fixed delay, so within a partition due times only
grow. When the head of a partition is not due yet, the consumer seeks back to it and pauses
the partition until then; other partitions go on. A message's offset is committed once it is
handled (with the others handled, every ``KAFKA_COMMIT_INTERVAL_MS``: the handler itself
reschedules or dead-letters failures). Infrastructure errors (PostgreSQL,
Redis, Kafka down) leave the message uncommitted and retry it after a pause. With tracing on,
each delivery is a consumer span continuing the message's ``traceparent`` (this consumer is
plain aiokafka, outside FastStream's telemetry middleware), so a retried write stays in the
event's trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from opentelemetry.trace import SpanKind, StatusCode

from jorge_runtime.failures import INFRASTRUCTURE_ERRORS
from jorge_runtime.kafka.offset_commits import OffsetCommits
from jorge_runtime.observability.tracing import continued_span
from services.crm_sync.ghl.budget import Priority
from services.crm_sync.ghl.lane_message import LaneMessage
from services.crm_sync.ghl.retry_schedule import DUE_AT_HEADER, LANE_HEADER, attempt_of

log = logging.getLogger(__name__)

Handle = Callable[[LaneMessage], Awaitable[None]]
Reject = Callable[[LaneMessage, BaseException], Awaitable[None]]
OUTAGE_PAUSE_SECONDS = 2.0


def due_at(headers: dict[str, str]) -> float:
    """The time (epoch seconds) a retried message may be delivered; 0 if it says none."""
    raw = headers.get(DUE_AT_HEADER, "")
    return int(raw) / 1000 if raw.isdigit() else 0.0


class DelayQueue:
    """One aiokafka consumer over every delay topic, in the service's retry group."""

    def __init__(
        self,
        *,
        connection: dict[str, Any],
        topics: list[str],
        group_id: str,
        handle: Handle,
        reject: Reject,
        commits: OffsetCommits,
    ) -> None:
        self._connection = connection
        self._commits = commits
        self._topics = topics
        self._group_id = group_id
        self._handle = handle
        self._reject = reject
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            **self._connection,
            group_id=self._group_id,
            client_id="jorge-crm_sync-retry",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        consumer.subscribe(self._topics, listener=self._commits.listener())
        await consumer.start()
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(consumer), name="crm_sync-delay-queue")

    @property
    def running(self) -> bool:
        """Whether the poll loop is still going (readiness reports a crashed one)."""
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._commits.flush(self._consumer)
            await self._consumer.stop()

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        paused: dict[TopicPartition, float] = {}
        while True:
            try:
                await self._poll_once(consumer, paused)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("delay queue poll failed; retrying")
                await asyncio.sleep(OUTAGE_PAUSE_SECONDS)

    async def _poll_once(self, consumer: AIOKafkaConsumer, paused: dict[TopicPartition, float]) -> None:
        now = time.time()
        assigned = consumer.assignment()
        for tp, due in list(paused.items()):
            if due <= now or tp not in assigned:
                del paused[tp]
                if tp in assigned:
                    consumer.resume(tp)
        wait = min([1.0, *(due - now for due in paused.values())])
        batch = await consumer.getmany(timeout_ms=max(10, int(wait * 1000)), max_records=200)
        for tp, records in batch.items():
            for record in records:
                headers = {k: v.decode(errors="replace") for k, v in record.headers}
                due = due_at(headers)
                if due > time.time():
                    consumer.seek(tp, record.offset)
                    consumer.pause(tp)
                    paused[tp] = due
                    break
                if not await self._deliver(record, headers):
                    consumer.seek(tp, record.offset)
                    await asyncio.sleep(OUTAGE_PAUSE_SECONDS)
                    break
                await self._commits.handled(consumer, tp, record.offset)

    async def _deliver(self, record: ConsumerRecord[Any, Any], headers: dict[str, str]) -> bool:
        """Hand the message to the sync handler; False if a dependency is down (retry it)."""
        key = record.key.decode(errors="replace") if record.key else None
        lane: Priority = "hot" if headers.get(LANE_HEADER) == "hot" else "standard"
        attempt = attempt_of(headers)
        message = LaneMessage(cast(bytes, record.value or b""), headers, key, lane, attempt)
        with continued_span(f"{record.topic} process", headers, kind=SpanKind.CONSUMER) as span:
            if span is not None:
                span.set_attributes(
                    {
                        # As FastStream's consumer spans name them, so one query finds both.
                        "messaging.system": "kafka",
                        "messaging.destination_publish.name": record.topic,
                        "messaging.operation": "process",
                        "messaging.kafka.destination.partition": record.partition,
                        "messaging.kafka.message.offset": record.offset,
                        "crm.attempt": attempt,
                    }
                )
            try:
                await self._handle(message)
            except asyncio.CancelledError:
                raise
            except INFRASTRUCTURE_ERRORS as error:
                log.warning("delay queue: dependency down, will retry", extra={"error": type(error).__name__})
                if span is not None:
                    span.set_status(StatusCode.ERROR, type(error).__name__)
                return False
            except Exception as error:  # the message itself is wrong or a bug: never loop on it
                if span is not None:
                    span.set_status(StatusCode.ERROR, type(error).__name__)
                try:
                    await self._reject(message, error)
                except INFRASTRUCTURE_ERRORS:
                    return False
        return True
