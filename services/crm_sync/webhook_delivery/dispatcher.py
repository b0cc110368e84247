"""The dispatcher: claims due deliveries from PostgreSQL and sends each as its own task.

Why the database and not Kafka drives sending: retries are due at arbitrary times (seconds to
hours), per-endpoint concurrency must hold across replicas, and a slow endpoint must not hold
up a partition. Due deliveries are claimed with `FOR UPDATE SKIP LOCKED` under a lease, so any
number of crm_sync replicas share the work, an endpoint never has more requests in flight than
its `max_concurrency`, each attempt is an independent task (no head-of-line blocking), and a
process that dies mid-attempt loses nothing: its lease expires and another claim retries with
the same webhook-id. Fan-out wakes the dispatcher at once; the poll only finds retries.
Each attempt is a `webhook.deliver` span in the trace of the event the message came from (the
context fan-out stored with it), so the POST shows up in the lead's trace, retries included.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
from opentelemetry.trace import StatusCode

from jorge_runtime.credential_cipher import CredentialCipher
from jorge_runtime.kafka.broker import OutgoingMessage, event_message
from jorge_runtime.observability.metrics import WEBHOOK_ATTEMPTS, WEBHOOK_DURATION, WEBHOOK_FAILURES
from jorge_runtime.observability.tracing import continued_span
from jorge_runtime.tasks import cancel_and_wait
from jorge_runtime.webhook_secrets import encrypt_plaintext_at_start, unseal
from schemas.webhooks import WebhookEndpointDisabled, WebhookEndpointDisabledPayload
from services.crm_sync.names import SERVICE, WEBHOOK_CONSUMER
from services.crm_sync.webhook_delivery.payloads import encode
from services.crm_sync.webhook_delivery.repository import (
    AttemptRecord,
    Claimed,
    DeliveryRepository,
    Succeeded,
)
from services.crm_sync.webhook_delivery.schedule import AttemptOutcome, RetryPolicy, decide
from services.crm_sync.webhook_delivery.sender import SendResult, WebhookSender
from services.crm_sync.webhook_delivery.signing import active_secrets, webhook_headers
from services.crm_sync.webhook_delivery.success_records import SuccessRecords

log = logging.getLogger(__name__)

_MAX_ENDPOINTS_PER_CLAIM = 100
_OUTBOX_SWEEP_SECONDS = 30.0
#: Claims start at least this far apart: under load, fan-outs and finished attempts wake the loop
#: every few milliseconds, and each claim is a round trip and a commit whatever it finds, so waits
#: of up to this long let one claim take what several would have (idle, a claim starts at once).
_MIN_CLAIM_INTERVAL_SECONDS = 0.025

Publish = Callable[[OutgoingMessage], Awaitable[None]]


def failure_reason(result: SendResult) -> str:
    """A bounded label for the failures metric."""
    if result.status_code is not None:
        code = result.status_code
        return f"http_{code}" if code in (408, 410, 429, 500, 502, 503, 504) else f"http_{code // 100}xx"
    if result.timed_out:
        return "timeout"
    if result.error and result.error.startswith(("address not allowed", "refused")):
        return "address_not_allowed"
    return "connection_error"


class Dispatcher:
    """Runs the claim loop and the attempts of one crm_sync process."""

    def __init__(
        self,
        *,
        pool: Callable[[], asyncpg.Pool],
        repository: DeliveryRepository,
        sender: WebhookSender,
        policy: RetryPolicy,
        publish: Publish,
        disabled_topic: str,
        poll_seconds: float,
        max_in_flight: int,
        lease_seconds: float,
        cipher: CredentialCipher | None = None,
    ) -> None:
        self._pool = pool
        self._cipher = cipher  # opens the endpoints' secrets; None: nothing can be signed
        self._repository = repository
        self._sender = sender
        self._policy = policy
        self._publish = publish
        self._disabled_topic = disabled_topic
        self._poll = poll_seconds
        self._max_in_flight = max_in_flight
        self._lease = lease_seconds
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._last_sweep = 0.0
        self._said_no_key = False
        self._successes = SuccessRecords(lambda batch: repository.record_successes(pool(), batch))

    def wake(self) -> None:
        """Look for due deliveries now (fan-out just created some, or a slot freed up)."""
        self._wake.set()

    async def encrypt_plaintext_secrets(self) -> None:
        """Encrypt the secrets stored in plain text before migration 0023 (they sign only then)."""
        await encrypt_plaintext_at_start(self._pool(), self._cipher, SERVICE)

    async def start(self) -> None:
        """Start the claim loop (after the pool is open)."""
        self._loop_task = asyncio.create_task(self._run(), name="webhook-dispatcher")

    async def stop(self, grace_seconds: float = 5.0) -> None:
        """Stop claiming; give attempts in flight a moment, then abandon them to their leases."""
        await cancel_and_wait(self._loop_task)
        if self._in_flight:
            _, pending = await asyncio.wait(self._in_flight, timeout=grace_seconds)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._successes.close()
        await self._sender.aclose()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            claimed, free = 0, self._max_in_flight - len(self._in_flight)
            claim_started = time.monotonic()
            try:
                claimed = await self.dispatch_once()
                await self._sweep_outbox()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook dispatcher could not claim deliveries; retrying")
            full = claimed == free or claimed >= _MAX_ENDPOINTS_PER_CLAIM
            if claimed and full and len(self._in_flight) < self._max_in_flight:
                # A full claim may have left due work behind; a smaller one took all there was
                # (fan-out and finished attempts wake the loop for more).
                continue
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for drops a cancel that lands
            # as the event is set, and stop() would then wait for this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll):
                    await self._wake.wait()
            await asyncio.sleep(_MIN_CLAIM_INTERVAL_SECONDS - (time.monotonic() - claim_started))

    async def dispatch_once(self) -> int:
        """Claim what is due within the free slots and start an attempt task for each."""
        free = self._max_in_flight - len(self._in_flight)
        if free <= 0:
            return 0
        if self._cipher is None:
            if not self._said_no_key:
                self._said_no_key = True
                log.error("webhooks wait: CRM_CREDENTIALS_KEY is not set, so no secret can sign them")
            return 0
        token, claims = await self._repository.claim(
            self._pool(), max_endpoints=_MAX_ENDPOINTS_PER_CLAIM, limit=free, lease_seconds=self._lease
        )
        for claim in claims:
            task = asyncio.create_task(self._attempt(token, claim), name=f"webhook-{claim.delivery_id}")
            self._in_flight.add(task)
            task.add_done_callback(self._finished)
        return len(claims)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wake.set()  # a slot of this endpoint (and of this process) is free again

    async def _attempt(self, token: uuid.UUID, claim: Claimed) -> None:
        try:
            with continued_span("webhook.deliver", claim.trace_context) as span:
                if span is not None:  # never the URL or ids: they may name people or hold tokens
                    span.set_attributes(
                        {
                            "webhook.event_type": claim.event_type,
                            "webhook.attempt": claim.attempt_number,
                            "webhook.trigger": claim.trigger,
                        }
                    )
                outcome = await self._send_and_record(token, claim)
                if span is not None:
                    span.set_attribute("webhook.outcome", outcome)
                    if outcome != "succeeded":
                        span.set_status(StatusCode.ERROR, outcome)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Nothing is lost: the lease expires and the next claim retries (same webhook-id).
            log.exception("webhook attempt could not be recorded", extra={"delivery_id": claim.delivery_id})

    async def _send_and_record(self, token: uuid.UUID, claim: Claimed) -> str:
        """Make the attempt and record it; return its outcome ("succeeded" or a failure reason)."""
        now = datetime.now(UTC)
        body = encode(claim.payload)
        assert self._cipher is not None  # nothing is claimed without it
        secret = unseal(self._cipher, claim.endpoint_id, claim.sealed_secret)
        previous = unseal(self._cipher, claim.endpoint_id, claim.sealed_previous_secret)
        assert secret is not None
        secrets = active_secrets(secret, previous, claim.previous_secret_expires_at, now)
        headers = webhook_headers(secrets, claim.message_id, int(now.timestamp()), body)
        result = await self._sender.send(
            claim.url, body, headers, pool_key=claim.endpoint_id, pool_size=claim.max_concurrency
        )
        label = self._observe(claim, result)
        outcome = AttemptOutcome(result.status_code, result.error, result.timed_out, result.retry_after)
        attempt = AttemptRecord(
            attempt_number=claim.attempt_number,
            trigger=claim.trigger,
            succeeded=outcome.succeeded,
            url=claim.url,
            started_at=now,
            duration_ms=result.duration_ms,
            response_status=result.status_code,
            response_body=result.body,
            error=result.error,
        )
        if outcome.succeeded:  # needs no endpoint state: a share of one statement, no lock
            await self._successes.record(Succeeded(claim, token, attempt))
            return label
        staged: OutgoingMessage | None = None
        async with self._pool().acquire() as conn, conn.transaction():
            state = await self._repository.lock_endpoint(conn, claim.endpoint_id)
            decision = decide(
                self._policy,
                outcome,
                attempts_made=claim.attempt_number,
                failing_since=state.failing_since if state else None,
                now=datetime.now(UTC),
            )
            kept = await self._repository.record_attempt(
                conn,
                claim,
                token,
                attempt,
                delivery_status=decision.delivery_status,
                next_attempt_at=decision.next_attempt_at,
            )
            if not kept or state is None:
                return label  # the lease was lost to another claimer; its answer decides
            await self._repository.update_endpoint(
                conn,
                claim.endpoint_id,
                failing_since=decision.failing_since,
                disable_reason=decision.disable_reason,
            )
            if decision.disable_reason and state.status == "active":
                staged = self._disabled_event(claim, decision.disable_reason, decision.failing_since, result)
                await self._repository.stage(conn, WEBHOOK_CONSUMER, staged)
        if staged is not None:
            log.warning(
                "webhook endpoint disabled",
                extra={"endpoint_id": claim.endpoint_id, "reason": decision.disable_reason},
            )
            await self._publish_staged(staged)
        return label

    def _observe(self, claim: Claimed, result: SendResult) -> str:
        """Count and log the attempt; return its outcome label."""
        succeeded = result.status_code is not None and 200 <= result.status_code < 300
        WEBHOOK_ATTEMPTS.labels(claim.event_type, "succeeded" if succeeded else "failed").inc()
        WEBHOOK_DURATION.labels(claim.event_type).observe(result.duration_ms / 1000)
        label = "succeeded" if succeeded else failure_reason(result)
        if not succeeded:
            WEBHOOK_FAILURES.labels(claim.event_type, label).inc()
        log.info(
            "webhook attempt",
            extra={
                "delivery_id": claim.delivery_id,
                "endpoint_id": claim.endpoint_id,
                "event": claim.event_type,
                "attempt": claim.attempt_number,
                "status_code": result.status_code,
                "duration_ms": result.duration_ms,
                "succeeded": succeeded,
            },
        )
        return label

    def _disabled_event(
        self, claim: Claimed, reason: str, failing_since: datetime | None, result: SendResult
    ) -> OutgoingMessage:
        event = WebhookEndpointDisabled(
            organization_id=claim.organization_id,
            correlation_id=claim.delivery_id,
            payload=WebhookEndpointDisabledPayload(
                endpoint_id=claim.endpoint_id,
                url=claim.url,
                reason=reason,
                failing_since=failing_since,
                last_response_code=result.status_code,
            ),
        )
        return event_message(event, topic=self._disabled_topic, key=claim.endpoint_id)

    async def _publish_staged(self, message: OutgoingMessage) -> None:
        try:
            await self._publish(message)
            await self._repository.mark_published(self._pool(), message.message_id)
        except Exception:
            log.exception("endpoint-disabled event not published yet; the outbox sweep retries")

    async def _sweep_outbox(self) -> None:
        """Publish staged events whose process died before publishing them."""
        if time.monotonic() - self._last_sweep < _OUTBOX_SWEEP_SECONDS:
            return
        self._last_sweep = time.monotonic()
        for message in await self._repository.unpublished(
            self._pool(), WEBHOOK_CONSUMER, _OUTBOX_SWEEP_SECONDS
        ):
            await self._publish_staged(message)
