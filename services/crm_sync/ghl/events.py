"""How the GHL sync reads an event: the envelope fields it needs, and full validation of the
event types it syncs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from schemas.buyers import BuyerMatched
from schemas.envelope import EventEnvelope
from schemas.leads import LeadQualified
from schemas.sellers import ConsultationRequested, SellerAnalyzed


class AnyEvent(BaseModel):
    """The envelope fields crm_sync needs from any event, whatever its payload's version."""

    model_config = ConfigDict(extra="ignore")

    event_id: uuid.UUID
    event_type: str
    organization_id: str
    occurred_at: datetime | None = None
    payload: dict[str, Any]


#: The events crm_sync syncs, validated in full (any other type is skipped, not invalid).
EVENT_MODELS: dict[str, type[EventEnvelope]] = {
    model.EVENT_TYPE: model for model in (LeadQualified, ConsultationRequested, BuyerMatched, SellerAnalyzed)
}


def parse_event(body: bytes) -> AnyEvent:
    """Decode an event as crm_sync does; raises the validation errors if it cannot be synced.
    `jorge dlq replay` uses it to refuse invalid messages that are still invalid."""
    event = AnyEvent.model_validate_json(body)
    if model := EVENT_MODELS.get(event.event_type):
        model.model_validate_json(body)
    return event
