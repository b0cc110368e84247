"""The versioned envelope every event travels in, and the Kafka headers that mirror it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class EventEnvelope(BaseModel):
    """Fields common to every event: identity, type, schema version, time, tenant and tracing.

    Subclasses fix ``event_type`` and ``schema_version`` and add a typed ``payload``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    EVENT_TYPE: ClassVar[str] = ""
    SCHEMA_VERSION: ClassVar[int] = 1

    event_id: uuid.UUID = Field(
        default_factory=uuid.uuid4, description="Unique per event; consumers deduplicate on it."
    )
    event_type: str = Field(description="Dotted past-tense name, e.g. lead.qualified.")
    schema_version: int = Field(ge=1, description="Version of this event's payload schema.")
    occurred_at: datetime = Field(default_factory=utc_now)
    organization_id: str = Field(min_length=1, max_length=64)
    correlation_id: str = Field(
        min_length=1, max_length=128, description="Request id that started this chain."
    )
    causation_id: uuid.UUID | None = Field(default=None, description="Event id this event was produced from.")

    def kafka_headers(self) -> dict[str, str]:
        """Headers that let tools route and trace without decoding the body."""
        return {
            "event-id": str(self.event_id),
            "event-type": self.event_type,
            "schema-version": str(self.schema_version),
            "organization-id": self.organization_id,
            "correlation-id": self.correlation_id,
            "content-type": "application/json",
        }
