"""The names crm_sync goes by, defined once: in metrics and dead letters, and as the stems of its
consumer groups and its inbox/outbox consumers."""

from __future__ import annotations

#: The service: metric labels, dead letters' ``consumer`` of invalid lane messages.
SERVICE = "crm_sync"

#: The GHL sync: consumer groups ``{prefix}crm_sync.ghl.{topic}`` and its inbox (event ledger).
GHL_CONSUMER = f"{SERVICE}.ghl"

#: The webhook engine: consumer groups ``{prefix}crm_sync.webhooks.{topic}``, its dead letters and
#: its outbox, apart from GHL sync's so a slow CRM never delays webhooks.
WEBHOOK_CONSUMER = f"{SERVICE}.webhooks"

#: Follow-up cadences (GHL-sync side): consumer groups ``{prefix}crm_sync.follow_ups.{topic}`` and
#: the outbox of their ``lead.follow_up_due`` events.
FOLLOW_UP_CONSUMER = f"{SERVICE}.follow_ups"
