"""Every event type and schema version, the headers each travels with, and reading old versions.

An event's current version is its model's ``schema_version``. When a change would break
consumers (see docs/EVENTS.md, "Changing an event"), the version is bumped and an upcaster that
turns the previous version's JSON into the new one is registered here, so that consumers read
both versions while old events are still on the topics.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from schemas.envelope import EventEnvelope

E = TypeVar("E", bound=EventEnvelope)

#: Turns an event's JSON at version N into its JSON at version N + 1.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

#: (event type, version N) -> the upcaster from N to N + 1. Empty while every event is at version 1.
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


class EventHeaders(BaseModel):
    """Kafka headers of every event: the envelope's identity, so tools route without decoding."""

    model_config = ConfigDict(populate_by_name=True)

    event_id: str = Field(alias="event-id", description="The envelope's event_id (a UUID).")
    event_type: str = Field(alias="event-type", description="The envelope's event_type.")
    schema_version: str = Field(alias="schema-version", description="The envelope's schema_version.")
    organization_id: str = Field(alias="organization-id", description="The tenant.")
    correlation_id: str = Field(alias="correlation-id", description="The request that started the chain.")
    content_type: str = Field(alias="content-type", description="Always application/json.")
    traceparent: str | None = Field(
        default=None, description="W3C trace context, when the producer traces (OpenTelemetry)."
    )


def schema_version_of(model: type[EventEnvelope]) -> int:
    """The schema version a model writes (its ``schema_version`` default)."""
    version = model.model_fields["schema_version"].default
    if not isinstance(version, int):
        raise TypeError(f"{model.__name__}.schema_version needs an integer default")
    return version


def event_models() -> dict[str, type[EventEnvelope]]:
    """Every concrete event model in the ``schemas`` package, by event type."""
    import schemas

    for module in pkgutil.iter_modules(schemas.__path__):
        importlib.import_module(f"schemas.{module.name}")
    found: dict[str, type[EventEnvelope]] = {}
    pending: list[type[EventEnvelope]] = [EventEnvelope]
    while pending:
        for sub in pending.pop().__subclasses__():
            pending.append(sub)
            if sub.EVENT_TYPE and sub.__module__.startswith("schemas."):
                found[sub.EVENT_TYPE] = sub
    return dict(sorted(found.items()))


def upcast(event_type: str, data: dict[str, Any], to_version: int) -> dict[str, Any]:
    """``data`` (one event's JSON, at any older version) brought up to ``to_version``.

    Raises LookupError when an upcaster of the chain is missing.
    """
    version = int(data.get("schema_version", 1))
    while version < to_version:
        step = UPCASTERS.get((event_type, version))
        if step is None:
            raise LookupError(f"no upcaster for {event_type} from schema version {version}")
        data = step(data)
        version += 1
        data["schema_version"] = version
    return data


@cache
def current_versions() -> dict[str, int]:
    """Event type -> the schema version its model writes (and consumers read)."""
    return {event_type: schema_version_of(model) for event_type, model in event_models().items()}


def upcast_to_current(data: Any) -> Any:
    """A decoded message body brought up to its event type's current version (anything else as is)."""
    if not UPCASTERS or not isinstance(data, dict):
        return data
    current = current_versions().get(str(data.get("event_type")))
    if current is None or int(data.get("schema_version", current)) >= current:
        return data
    return upcast(str(data["event_type"]), dict(data), current)


def read_event(model: type[E], body: bytes | str | dict[str, Any]) -> E:
    """Decode an event of ``model``'s type written at its current or any older schema version."""
    data = body if isinstance(body, dict) else json.loads(body)
    return model.model_validate(upcast(model.EVENT_TYPE, dict(data), schema_version_of(model)))


class DeadLetterHeaders(BaseModel):
    """Kafka headers of a dead letter: the failed message's own headers (the event headers, when it
    had them) plus why and where it failed. The reason names fields and the problem, never values."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")

    dlq_reason: str = Field(alias="dlq-reason", description="What was wrong, at most 1000 characters.")
    dlq_error_type: str = Field(alias="dlq-error-type", description="The exception's class name.")
    dlq_consumer: str = Field(alias="dlq-consumer", description="The consumer that gave up.")
    dlq_attempts: str = Field(alias="dlq-attempts", description="How many times it was tried.")
    dlq_failed_at: str = Field(alias="dlq-failed-at", description="When it was dead-lettered (ISO 8601).")
    dlq_origin_topic: str | None = Field(
        default=None, alias="dlq-origin-topic", description="Where it was read."
    )
    dlq_origin_partition: str | None = Field(default=None, alias="dlq-origin-partition")
    dlq_origin_offset: str | None = Field(default=None, alias="dlq-origin-offset")
