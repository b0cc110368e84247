"""Wiring of follow-ups into crm_sync's GHL-sync side: two consumers on the GHL sync's broker
(lead.qualified schedules a plan, lead.engagement_recorded stops it) and the claim loop."""

from __future__ import annotations

from typing import Any

from jorge_runtime.kafka.broker import KafkaPublisher
from jorge_runtime.settings import Settings
from jorge_runtime.worker import WorkerResources, consumer_options
from schemas.follow_ups import LeadEngagementRecorded
from schemas.leads import LeadQualified
from schemas.topics import LEAD_ENGAGEMENT_RECORDED, LEAD_FOLLOW_UP_DUE, LEAD_QUALIFIED, TopicNames, TopicSpec
from services.crm_sync.follow_ups.domain import parse_cadence
from services.crm_sync.follow_ups.handlers import EngagementHandler, PlanStarter, StepRunner
from services.crm_sync.follow_ups.repository import FollowUpRepository
from services.crm_sync.follow_ups.scheduler import FollowUpScheduler
from services.crm_sync.ghl.budget import BudgetDefaults, GhlBudget
from services.crm_sync.ghl.client import GhlClient
from services.crm_sync.ghl.install import GhlSync
from services.crm_sync.ghl.repository import CrmRepository
from services.crm_sync.ghl.retry_schedule import parse_delays
from services.crm_sync.names import FOLLOW_UP_CONSUMER, SERVICE
from services.crm_sync.webhook_delivery.repository import DeliveryRepository


class FollowUps:
    """The installed engine: open after the GHL sync opened (it shares its credentials), start
    after it started, stop and close before it."""

    def __init__(
        self, settings: Settings, resources: WorkerResources, ghl: GhlSync, topics: TopicNames
    ) -> None:
        self._settings = settings
        self._resources = resources
        self._ghl = ghl
        self._topics = topics
        self._default_days = parse_cadence(settings.follow_up_cadence_days)
        self._client: GhlClient | None = None
        self._repository: FollowUpRepository | None = None
        self._scheduler: FollowUpScheduler | None = None
        self.publisher = KafkaPublisher(ghl.broker, settings.kafka_publish_timeout_seconds)

    @property
    def repository(self) -> FollowUpRepository:
        if self._repository is None:
            raise RuntimeError("follow-ups are not open")
        return self._repository

    def plans(self) -> PlanStarter:
        return PlanStarter(self.repository, self._default_days, self._settings.follow_up_day_seconds)

    def engagements(self) -> EngagementHandler:
        return EngagementHandler(self.repository)

    async def open(self) -> None:
        s = self._settings
        # The same budget (Redis, per location) as every other GHL call of the platform.
        budget = GhlBudget(
            self._resources.redis,
            BudgetDefaults(
                s.ghl_budget_burst,
                s.ghl_budget_interval_ms,
                s.ghl_budget_daily,
                s.ghl_budget_margin_ms,
                s.ghl_budget_daily_probe_ms,
            ),
        )
        self._client = GhlClient(
            s.ghl_base_url,
            budget,
            timeout_seconds=s.ghl_timeout_seconds,
            max_wait_ms=s.ghl_budget_max_wait_ms,
        )
        await self._client.open()
        self._repository = FollowUpRepository(self._resources.pool, s.kafka_topic_prefix)
        runner = StepRunner(
            repository=self._repository,
            contacts=CrmRepository(self._resources.pool),
            resolver=lambda: self._ghl.handler.resolver,
            client=self._client,
            deliveries=DeliveryRepository(),
            publish=self.publisher.publish,
            topics=self._topics,
            default_days=self._default_days,
            day_seconds=s.follow_up_day_seconds,
            retry_delays=parse_delays(s.crm_retry_delays_seconds),
            max_attempts=s.crm_max_attempts,
            max_payload_bytes=s.webhook_max_payload_bytes,
        )
        self._scheduler = FollowUpScheduler(
            self._repository,
            runner,
            self.publisher,
            poll_seconds=s.follow_up_poll_seconds,
            lease_seconds=s.follow_up_lease_seconds,
        )

    async def start(self) -> None:
        assert self._scheduler is not None
        self._scheduler.start()

    async def stop(self) -> None:
        if self._scheduler is not None:
            await self._scheduler.stop()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()


def install_follow_ups(settings: Settings, resources: WorkerResources, ghl: GhlSync) -> FollowUps:
    """Subscribe the plan and stop handlers on the GHL sync's broker; build the engine."""
    topics = TopicNames(settings.kafka_topic_prefix)
    follow_ups = FollowUps(settings, resources, ghl, topics)
    broker = ghl.broker

    def options(spec: TopicSpec) -> dict[str, Any]:
        return {
            **consumer_options(resources, SERVICE, background=True),  # plans count in days
            "group_id": f"{settings.kafka_consumer_group_prefix}{FOLLOW_UP_CONSUMER}.{spec.name}",
        }

    @broker.subscriber(topics(LEAD_QUALIFIED), **options(LEAD_QUALIFIED))
    async def follow_ups_on_lead_qualified(event: LeadQualified) -> None:
        """Schedule the lead's follow-up plan from its organisation's cadence."""
        await follow_ups.plans().lead_qualified(event)

    @broker.subscriber(topics(LEAD_ENGAGEMENT_RECORDED), **options(LEAD_ENGAGEMENT_RECORDED))
    async def follow_ups_on_engagement(event: LeadEngagementRecorded) -> None:
        """Stop the cadence of a lead that replied, booked, said no or opted out."""
        await follow_ups.engagements().engagement_recorded(event)

    broker.publisher(
        topics(LEAD_FOLLOW_UP_DUE), title="LeadFollowUpDue", description=LEAD_FOLLOW_UP_DUE.description
    )
    return follow_ups
