"""Composition root of the crm_sync worker: GoHighLevel sync and webhook delivery.

``CRM_SYNC_ROLE`` picks the half this process runs: ``ghl`` (the GHL sync), ``webhooks`` (the
webhook engine) or ``all`` (both, one event loop). Each half has its own broker and consumer
groups, so each runs and scales as a process of its own and a GHL backlog never queues webhooks.
"""

from __future__ import annotations

import logging

from faststream.asgi import AsgiFastStream

from jorge_runtime.credential_cipher import CredentialCipher
from jorge_runtime.kafka.background_consumers import BackgroundConsumers
from jorge_runtime.kafka.broker import KafkaPublisher, create_broker
from jorge_runtime.retention.policy import RetentionPolicy
from jorge_runtime.retention.task import PeriodicPurge
from jorge_runtime.settings import Settings
from jorge_runtime.worker import WorkerResources, install_dead_letter_policy, worker_app
from schemas.topics import TopicNames
from services.crm_sync.follow_ups.install import install_follow_ups
from services.crm_sync.ghl.budget import BudgetDefaults, GhlBudget
from services.crm_sync.ghl.client import GhlClient
from services.crm_sync.ghl.credential_resolver import CredentialResolver
from services.crm_sync.ghl.credential_store import CredentialStore
from services.crm_sync.ghl.failure_router import FailureRouter
from services.crm_sync.ghl.handlers import SyncHandler
from services.crm_sync.ghl.install import GhlSync, install_ghl_sync
from services.crm_sync.ghl.mapping import parse_custom_fields
from services.crm_sync.ghl.repository import CrmRepository
from services.crm_sync.ghl.retry_schedule import parse_delays
from services.crm_sync.ghl.waiting_room import WaitingRoom
from services.crm_sync.ghl.writer import CrmWriter
from services.crm_sync.ghl.written_fields import WrittenFields
from services.crm_sync.names import SERVICE
from services.crm_sync.webhook_delivery import install_webhook_delivery

log = logging.getLogger(__name__)


def ghl_client(settings: Settings, resources: WorkerResources) -> GhlClient:
    """The GHL client with the locations' shared budget (Redis must be open)."""
    s = settings
    budget = GhlBudget(
        resources.redis,
        BudgetDefaults(
            s.ghl_budget_burst,
            s.ghl_budget_interval_ms,
            s.ghl_budget_daily,
            s.ghl_budget_margin_ms,
            s.ghl_budget_daily_probe_ms,
        ),
    )
    return GhlClient(
        s.ghl_base_url, budget, timeout_seconds=s.ghl_timeout_seconds, max_wait_ms=s.ghl_budget_max_wait_ms
    )


def sync_handler(
    settings: Settings,
    resources: WorkerResources,
    client: GhlClient,
    credential_store: CredentialStore,
    publisher: KafkaPublisher,
    topics: TopicNames,
    *,
    delays: tuple[float, ...],
    custom_fields: dict[str, str],
) -> SyncHandler:
    """The sync handler and its collaborators, built on the open pool and Redis."""
    pool = resources.pool
    repository = CrmRepository(pool)
    resolver = CredentialResolver(settings, pool, credential_store, client)
    return SyncHandler(
        pool=pool,
        publisher=publisher,
        resolver=resolver,
        writer=CrmWriter(client, repository, WrittenFields(resources.redis)),
        budget=client.budget,
        repository=repository,
        failures=FailureRouter(
            pool=pool,
            repository=repository,
            publisher=publisher,
            topics=topics,
            delays=delays,
            max_attempts=settings.crm_max_attempts,
        ),
        waiting=WaitingRoom(
            pool,
            publisher,
            topics,
            resolver.has_credentials,
            interval_seconds=settings.crm_waiting_check_seconds,
        ),
        custom_fields=custom_fields,
    )


def create_app(settings: Settings) -> AsgiFastStream:
    """Wire broker, resources and the role's halves; nothing connects until the app starts."""
    role = settings.crm_sync_role
    broker = create_broker(settings, client_id=f"jorge-{SERVICE}")
    resources = WorkerResources(settings, SERVICE if role == "all" else f"{SERVICE}.{role}")
    install_dead_letter_policy(broker, settings, SERVICE, resources)
    side_consumers: dict[str, BackgroundConsumers] = {}
    ghl = install_ghl_sync(settings, resources) if role in ("all", "ghl") else None
    # Webhook delivery (services/crm_sync/webhook_delivery/): its own broker and consumer groups,
    # and a dispatcher task; starts once the pool is open, stops before it closes.
    webhooks = (
        install_webhook_delivery(broker, resources, settings, TopicNames(settings.kafka_topic_prefix))
        if role in ("all", "webhooks")
        else None
    )
    if ghl is not None:
        side_consumers["kafka_ghl"] = ghl.consumers
    if webhooks is not None:
        side_consumers["kafka_webhooks"] = webhooks.consumers

    # Readiness covers the side brokers too: started within the grace period, still consuming.
    app = worker_app(SERVICE, broker, resources, side_consumers=side_consumers)
    if ghl is not None:
        install_ghl_lifecycle(app, ghl, settings, resources)
        # Follow-up cadences (services/crm_sync/follow_ups/): GHL-sync side; consumers on its
        # broker, a claim loop once it is open. Added after the GHL sync's hooks, so it opens after it.
        follow_ups = install_follow_ups(settings, resources, ghl)
        app.on_startup(follow_ups.open)
        app.after_startup(follow_ups.start)
        app.on_shutdown(follow_ups.stop)
        app.after_shutdown(follow_ups.close)
    if webhooks is not None:
        app.schema.add_broker(webhooks.broker)
        app.on_startup(webhooks.start)
        app.on_shutdown(webhooks.stop)

    # Retention: one purge per RETENTION_INTERVAL_SECONDS across replicas of either half
    # (jorge_runtime/retention/task.py).
    retention = PeriodicPurge(
        lambda: resources.pool, RetentionPolicy.from_settings(settings), settings.retention_interval_seconds
    )
    app.after_startup(retention.start)
    app.on_shutdown(retention.stop)
    return app


def install_ghl_lifecycle(
    app: AsgiFastStream, ghl: GhlSync, settings: Settings, resources: WorkerResources
) -> None:
    """Build the GHL sync's handler once the pool and Redis are open; start and stop its consumers."""
    # Read now so a malformed CRM_CREDENTIALS_KEY (ConfigError), retry schedule or custom-field
    # mapping stops the worker at start.
    cipher = CredentialCipher.from_setting(settings.crm_credentials_key)
    delays = parse_delays(settings.crm_retry_delays_seconds)
    custom_fields = parse_custom_fields(settings.ghl_custom_fields)
    # The side brokers' topics belong in this worker's AsyncAPI document; the app does not start them.
    app.schema.add_broker(ghl.broker)
    clients: list[GhlClient] = []

    async def open_ghl_sync() -> None:
        client = ghl_client(settings, resources)
        await client.open()
        clients.append(client)
        credential_store = CredentialStore(resources.pool, cipher)
        handler = sync_handler(
            settings,
            resources,
            client,
            credential_store,
            ghl.publisher,
            ghl.topics,
            delays=delays,
            custom_fields=custom_fields,
        )
        ghl.attach(handler)
        migrated = await credential_store.encrypt_plaintext()
        if migrated:
            log.warning("GHL tokens stored in plain text were encrypted", extra={"organizations": migrated})

    async def close_ghl_client() -> None:
        for client in clients:
            await client.close()

    app.on_startup(open_ghl_sync)
    app.after_startup(ghl.start)
    app.on_shutdown(ghl.stop)
    app.after_shutdown(close_ghl_client)
