"""Outbound webhooks of crm_sync: Standard Webhooks signing, retries, SSRF-safe sending.

`install_webhook_delivery(broker, resources, settings, topics)` wires it into the worker; see
docs/WEBHOOKS.md.
"""

from services.crm_sync.webhook_delivery.install import WebhookDelivery, install_webhook_delivery

__all__ = ["WebhookDelivery", "install_webhook_delivery"]
