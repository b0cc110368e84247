"""Composition root of the crm_sync worker: GoHighLevel sync (and webhook delivery)."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from jorge_runtime.kafka.broker import create_broker
from jorge_runtime.retention.policy import RetentionPolicy
from jorge_runtime.retention.task import PeriodicPurge
from jorge_runtime.settings import Settings
from jorge_runtime.worker import WorkerResources, install_dead_letter_policy, worker_app
from schemas.topics import TopicNames
from services.crm_sync.ghl.install import install_ghl_sync
from services.crm_sync.webhook_delivery import install_webhook_delivery

SERVICE = "crm_sync"


def create_app(settings: Settings) -> AsgiFastStream:
    """Wire broker, resources and the GHL sync; nothing connects until the app starts."""
    broker = create_broker(settings, client_id=f"jorge-{SERVICE}")
    resources = WorkerResources(settings)
    install_dead_letter_policy(broker, settings, SERVICE, resources)
    ghl = install_ghl_sync(settings, resources)
    # Webhook delivery (issue 6; services/crm_sync/webhook_delivery/): its own broker and consumer groups,
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

    # Retention: one purge per RETENTION_INTERVAL_SECONDS across replicas (jorge_runtime/retention/task.py).
    retention = PeriodicPurge(
        lambda: resources.pool, RetentionPolicy.from_settings(settings), settings.retention_interval_seconds
    )
    app.after_startup(retention.start)
    app.on_shutdown(retention.stop)
    return app
