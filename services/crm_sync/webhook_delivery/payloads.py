"""The JSON body subscribers receive (pure): `{"event", "timestamp", "data"}` (spec section 1.5).

`lead.qualified` carries a curated view of the qualification; `buyer.matched` and
`seller.analyzed` carry their event's payload. A body over the size limit keeps only the
top-level ids and `"truncated": true`, so receivers can fetch the rest through the API.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from schemas.leads import LeadQualifiedPayload
from schemas.webhooks import WebhookPayload


def lead_qualified_data(payload: LeadQualifiedPayload) -> dict[str, Any]:
    """What a subscriber needs to act on a qualified lead without calling back."""
    q = payload.qualification
    lead = payload.lead
    return {
        "lead_id": lead.lead_id,
        "qualification_id": payload.qualification_id,
        "intent": q.intent.value,
        "temperature": q.temperature.value,
        "next_action": q.next_action,
        "timeline": q.timeline.value,
        "confidence": q.confidence,
        "is_investor": q.is_investor,
        "financial_readiness": q.financial_readiness.model_dump(mode="json"),
        "property_preferences": q.property_preferences.model_dump(mode="json"),
        "engine": q.engine,
        "completed_at": payload.completed_at.isoformat().replace("+00:00", "Z"),
        "lead": {"name": lead.name, "phone": lead.phone, "email": lead.email, "source": lead.source},
    }


def render(event: str, timestamp: datetime, data: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    """The body as stored and sent, reduced to its ids if its JSON exceeds ``max_bytes``."""
    body = WebhookPayload(event=event, timestamp=timestamp, data=data).model_dump(mode="json")
    if len(encode(body)) <= max_bytes:
        return body
    ids = {k: v for k, v in data.items() if k.endswith("_id") and isinstance(v, str | int)}
    return body | {"data": ids | {"truncated": True}}


def encode(body: dict[str, Any]) -> bytes:
    """The exact bytes signed and sent (compact JSON, UTF-8)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
