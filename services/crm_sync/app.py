"""Composition root of the crm_sync worker: GoHighLevel sync and webhook delivery.

``CRM_SYNC_ROLE`` picks the half this process runs: ``ghl`` (the GHL sync), ``webhooks`` (the
webhook engine) or ``all`` (both, one event loop). Each half has its own broker and consumer
groups, so each runs and scales as a process of its own and a GHL backlog never queues webhooks.
"""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from jorge_runtime.background_consumers import BackgroundConsumers
from jorge_runtime.broker import create_broker
from jorge_runtime.retention import RetentionPolicy
from jorge_runtime.retention_task import PeriodicPurge
from jorge_runtime.settings import Settings
from jorge_runtime.worker import WorkerResources, install_dead_letter_policy, worker_app
from schemas.topics import TopicNames
from services.crm_sync.ghl_install import install_ghl_sync
from services.crm_sync.webhooks import install_webhook_delivery

SERVICE = "crm_sync"


def create_app(settings: Settings) -> AsgiFastStream:
    """Wire broker, resources and the role's halves; nothing connects until the app starts."""
    role = settings.crm_sync_role
    broker = create_broker(settings, client_id=f"jorge-{SERVICE}")
    resources = WorkerResources(settings)
    install_dead_letter_policy(broker, settings, SERVICE, resources)
    side_consumers: dict[str, BackgroundConsumers] = {}
    ghl = install_ghl_sync(settings, resources) if role in ("all", "ghl") else None
    # Webhook delivery (services/crm_sync/webhooks/): its own broker and consumer groups, and a
    # dispatcher task; starts once the pool is open, stops before it closes.
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
        # The side brokers' topics belong in this worker's AsyncAPI document; the app does not start them.
        app.schema.add_broker(ghl.broker)
        app.on_startup(ghl.open)
        app.after_startup(ghl.start)
        app.on_shutdown(ghl.stop)
        app.after_shutdown(ghl.close)

    if webhooks is not None:
        app.schema.add_broker(webhooks.broker)
        app.on_startup(webhooks.start)
        app.on_shutdown(webhooks.stop)

    # Retention: one purge per RETENTION_INTERVAL_SECONDS across replicas of either half
    # (jorge_runtime/retention_task.py).
    retention = PeriodicPurge(
        lambda: resources.pool, RetentionPolicy.from_settings(settings), settings.retention_interval_seconds
    )
    app.after_startup(retention.start)
    app.on_shutdown(retention.stop)
    return app
