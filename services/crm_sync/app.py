"""Composition root of the crm_sync worker: GoHighLevel sync (and webhook delivery)."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from jorge_runtime.broker import create_broker
from jorge_runtime.retention import RetentionPolicy
from jorge_runtime.retention_task import PeriodicPurge
from jorge_runtime.settings import Settings
from jorge_runtime.worker import WorkerResources, install_dead_letter_policy, worker_app
from schemas.topics import TopicNames
from services.crm_sync.follow_ups.install import install_follow_ups
from services.crm_sync.ghl_install import install_ghl_sync
from services.crm_sync.webhooks import install_webhook_delivery

SERVICE = "crm_sync"


def create_app(settings: Settings) -> AsgiFastStream:
    """Wire broker, resources and the GHL sync; nothing connects until the app starts."""
    broker = create_broker(settings, client_id=f"jorge-{SERVICE}")
    resources = WorkerResources(settings)
    install_dead_letter_policy(broker, settings, SERVICE, resources)
    ghl = install_ghl_sync(settings, resources)
    # Webhook delivery (issue 6; services/crm_sync/webhooks/): its own broker and consumer groups,
    # and a dispatcher task; starts once the pool is open, stops before it closes.
    webhooks = install_webhook_delivery(broker, resources, settings, TopicNames(settings.kafka_topic_prefix))

    # Readiness covers the side brokers too: started within the grace period, still consuming.
    side_consumers = {"kafka_ghl": ghl.consumers, "kafka_webhooks": webhooks.consumers}
    app = worker_app(SERVICE, broker, resources, side_consumers=side_consumers)
    # The side brokers' topics belong in this worker's AsyncAPI document; the app does not start them.
    app.schema.add_broker(ghl.broker)
    app.schema.add_broker(webhooks.broker)
    app.on_startup(ghl.open)
    app.after_startup(ghl.start)
    app.on_shutdown(ghl.stop)
    app.after_shutdown(ghl.close)

    app.on_startup(webhooks.start)
    app.on_shutdown(webhooks.stop)

    # Follow-up cadences (services/crm_sync/follow_ups/): GHL-sync side; consumers on its broker,
    # a claim loop once it is open. Added after the GHL sync's hooks, so it opens after it.
    follow_ups = install_follow_ups(settings, resources, ghl)
    app.on_startup(follow_ups.open)
    app.after_startup(follow_ups.start)
    app.on_shutdown(follow_ups.stop)
    app.after_shutdown(follow_ups.close)

    # Retention: one purge per RETENTION_INTERVAL_SECONDS across replicas (jorge_runtime/retention_task.py).
    retention = PeriodicPurge(
        lambda: resources.pool, RetentionPolicy.from_settings(settings), settings.retention_interval_seconds
    )
    app.after_startup(retention.start)
    app.on_shutdown(retention.stop)
    return app
