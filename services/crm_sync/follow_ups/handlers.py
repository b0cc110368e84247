"""Follow-up handlers: a qualified lead gets a plan; a due step becomes a GHL task (and a
workflow enrolment) and a lead.follow_up_due webhook, once; a lead's engagement stops the plan."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from jorge_runtime.kafka.broker import OutgoingMessage, PublishFailed, event_message
from jorge_runtime.observability.metrics import FOLLOW_UP_STEPS, FOLLOW_UP_STOPPED
from schemas.follow_ups import LeadEngagementRecorded, LeadFollowUpDue, LeadFollowUpDuePayload
from schemas.leads import LeadQualified
from schemas.topics import LEAD_FOLLOW_UP_DUE, TopicNames
from schemas.webhooks import new_message_id
from services.crm_sync.follow_ups.domain import (
    Cadence,
    after_quiet_hours,
    due_times,
    marker,
    stop_reason,
    task_fields,
    verdict,
)
from services.crm_sync.follow_ups.repository import ClaimedStep, FollowUpRepository
from services.crm_sync.ghl.budget import BudgetSpent
from services.crm_sync.ghl.client import GhlClient, GhlError, GhlTransientError
from services.crm_sync.ghl.credential_resolver import CredentialResolver
from services.crm_sync.ghl.repository import CrmRepository
from services.crm_sync.ghl.retry_schedule import next_retry
from services.crm_sync.webhook_delivery.payloads import render
from services.crm_sync.webhook_delivery.repository import DeliveryRepository

log = logging.getLogger(__name__)

#: How long a step waits when its lead has no GHL contact or credentials yet (the sync is behind).
NOT_READY_DELAY_SECONDS = 30.0


class PlanStarter:
    """Schedules a plan from the organisation's cadence when a lead is qualified."""

    def __init__(
        self, repository: FollowUpRepository, default_days: tuple[float, ...], day_seconds: float
    ) -> None:
        self._repository = repository
        self._default_days = default_days
        self._day_seconds = day_seconds

    async def lead_qualified(self, event: LeadQualified) -> str | None:
        """Store the lead's plan: "created", "restarted" (a new inquiry after its last plan ended),
        or None (a redelivery, or a plan still running, paused, cancelled or opted out of)."""
        temperature = event.payload.qualification.temperature.value
        cadence = await self._repository.cadence(event.organization_id, self._default_days)
        offsets = cadence.offsets(temperature)
        start = event.payload.completed_at
        dues = due_times(start, offsets, cadence, self._day_seconds)
        created = await self._repository.create_plan(
            event.organization_id,
            event.payload.lead.lead_id,
            temperature,
            event.event_id,
            list(zip(offsets, dues, strict=True)),
        )
        if created:
            log.info(
                "follow-up plan %s",
                created,
                extra={"organization_id": event.organization_id, "steps": len(offsets)},
            )
        return created


class EngagementHandler:
    """Stops the cadence of a lead that replied, booked, said no or opted out."""

    def __init__(self, repository: FollowUpRepository) -> None:
        self._repository = repository

    async def engagement_recorded(self, event: LeadEngagementRecorded) -> int:
        """Stop the plans the signal concerns; the number stopped."""
        signal = event.payload
        reason = stop_reason(signal)
        if reason is None:
            return 0
        if signal.lead_id:
            leads = [(event.organization_id, signal.lead_id)]
        elif signal.ghl_location_id and signal.ghl_contact_id:
            leads = await self._repository.leads_of_contact(
                signal.ghl_location_id, signal.ghl_contact_id, event.organization_id
            )
        else:
            return 0
        stopped = 0
        for organization_id, lead_id in leads:
            if await self._repository.stop(organization_id, lead_id, reason):
                FOLLOW_UP_STOPPED.labels(reason).inc()
                stopped += 1
                log.info(
                    "follow-up plan stopped",
                    extra={"organization_id": organization_id, "reason": reason, "source": signal.source},
                )
        return stopped


class StepRunner:
    """Carries out one claimed step through the shared GHL client (budget, retries)."""

    def __init__(
        self,
        *,
        repository: FollowUpRepository,
        contacts: CrmRepository,
        resolver: Callable[[], CredentialResolver],
        client: GhlClient,
        deliveries: DeliveryRepository,
        publish: Callable[[OutgoingMessage], Awaitable[None]],
        topics: TopicNames,
        default_days: tuple[float, ...],
        day_seconds: float,
        retry_delays: tuple[float, ...],
        max_attempts: int,
        max_payload_bytes: int,
    ) -> None:
        self._repository = repository
        self._contacts = contacts
        self._resolver = resolver
        self._client = client
        self._deliveries = deliveries
        self._publish = publish
        self._topics = topics
        self._default_days = default_days
        self._day_seconds = day_seconds
        self._delays = retry_delays
        self._max_attempts = max_attempts
        self._max_payload_bytes = max_payload_bytes

    async def run(self, step: ClaimedStep) -> str:
        """Carry out the step or reschedule it; the outcome. Infrastructure errors propagate (the
        lease expires and another claim tries again)."""
        repo = self._repository
        cadence = await repo.cadence(step.organization_id, self._default_days)
        now = datetime.now(UTC)
        match verdict(step.due_at, now, cadence, self._day_seconds):
            case "too_late":
                async with repo.pool.acquire() as conn, conn.transaction():
                    await repo.finish(conn, step.id, "skipped", "too_late")
                FOLLOW_UP_STEPS.labels("skipped").inc()
                return "skipped"
            case "quiet":
                wait = (after_quiet_hours(now, cadence, self._day_seconds) - now).total_seconds()
                await repo.later(step.id, wait, None, counts=False)
                return "quiet"
        if not await repo.still_pending(step.id):
            return "stopped"  # the lead engaged after the claim: nothing is sent
        try:
            return await self._carry_out(step, cadence)
        except BudgetSpent as spent:
            await repo.later(step.id, spent.wait_ms / 1000, str(spent), counts=False)
            return "budget"
        except GhlTransientError as error:
            return await self._retry(step, str(error))
        except GhlError as error:  # rejected, unauthorized, missing scope: will not succeed as is
            log.error(
                "GHL refused a follow-up step: %s",
                error,
                extra={"organization_id": step.organization_id, "step": step.step_number},
            )
            async with repo.pool.acquire() as conn, conn.transaction():
                await repo.finish(conn, step.id, "failed", f"ghl: {error}"[:300])
            FOLLOW_UP_STEPS.labels("failed").inc()
            return "failed"

    async def _retry(self, step: ClaimedStep, error: str) -> str:
        retry = next_retry(step.attempts, self._delays, self._max_attempts)
        if retry is None:
            async with self._repository.pool.acquire() as conn, conn.transaction():
                await self._repository.finish(conn, step.id, "failed", f"retries exhausted: {error}"[:300])
            FOLLOW_UP_STEPS.labels("failed").inc()
            return "failed"
        await self._repository.later(step.id, retry.delay_seconds, error[:300])
        return "retry"

    async def _carry_out(self, step: ClaimedStep, cadence: Cadence) -> str:
        repo = self._repository
        credentials = await self._resolver().resolve(step.organization_id)
        contact_id = (
            await self._contacts.contact_id(step.organization_id, credentials.location_id, step.lead_id)
            if credentials is not None
            else None
        )
        if credentials is None or contact_id is None:
            # The lead's sync to GHL has not happened yet (or the organisation has no GHL): later.
            await repo.later(step.id, NOT_READY_DELAY_SECONDS, "no GHL contact yet", counts=False)
            return "not_ready"
        task_id = step.task_id
        if task_id is None and step.task_started:  # sent before, outcome unknown: look first
            wanted = marker(str(step.id))
            tasks = await self._client.list_tasks(credentials, contact_id, "standard")
            found = next((t for t in tasks if wanted in str(t.get("body", ""))), None)
            task_id = str(found.get("id", "")) if found else None
        if task_id is None:
            await repo.task_started(step.id)
            fields = task_fields(step.lead_id, step.step_number, step.steps_total, step.due_at, str(step.id))
            task_id = await self._client.create_task(credentials, contact_id, fields, "standard")
        if task_id != step.task_id:
            await repo.task_created(step.id, task_id)
        if cadence.workflow_id and not step.workflow_added:
            await self._client.add_to_workflow(credentials, contact_id, cadence.workflow_id, "standard")
            await repo.workflow_added(step.id)
        event = LeadFollowUpDue(
            event_id=step.id,  # one step, one event: a second finish finds its webhook and outbox row
            organization_id=step.organization_id,
            correlation_id=f"follow-up-{step.id}",
            payload=LeadFollowUpDuePayload(
                lead_id=step.lead_id,
                step_number=step.step_number,
                steps_total=step.steps_total,
                offset_days=step.offset_days,
                due_at=step.due_at,
                temperature=step.temperature,
                ghl_contact_id=contact_id,
                ghl_task_id=task_id,
                ghl_workflow_id=cadence.workflow_id,
            ),
        )
        message = event_message(event, topic=self._topics(LEAD_FOLLOW_UP_DUE), key=step.lead_id)
        async with repo.pool.acquire() as conn, conn.transaction():
            if not await repo.plan_is_active(conn, step.organization_id, step.lead_id):
                return "stopped"  # the lead engaged while the task was written: no webhook
            await repo.finish(conn, step.id, "done")
            await self._deliveries.fan_out(
                conn,
                organization_id=step.organization_id,
                event_type=LeadFollowUpDue.EVENT_TYPE,
                source_event_id=step.id,
                message_id=new_message_id(),
                payload=render(
                    LeadFollowUpDue.EVENT_TYPE,
                    event.occurred_at,
                    event.payload.model_dump(mode="json"),
                    self._max_payload_bytes,
                ),
            )
            await repo.stage(conn, message)
        FOLLOW_UP_STEPS.labels("done").inc()
        log.info(
            "follow-up step done",
            extra={
                "organization_id": step.organization_id,
                "step": step.step_number,
                "attempt": step.attempts,
            },
        )
        try:
            await self._publish(message)
            await repo.mark_published(message.message_id)
        except PublishFailed:  # committed: the relay (scheduler.py) republishes it
            log.warning("lead.follow_up_due not acknowledged by Kafka yet; the relay sends it")
        return "done"
