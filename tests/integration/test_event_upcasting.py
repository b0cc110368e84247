"""During a schema migration a consumer reads both versions: the brokers' decoder upcasts old events."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

import schemas.registry as registry
from jorge_runtime.kafka.broker import KafkaPublisher, create_broker, event_message
from jorge_runtime.settings import Settings
from jorge_runtime.worker import WorkerResources, consumer_options
from schemas.envelope import EventEnvelope
from schemas.leads import LeadQualified
from schemas.topics import LEAD_QUALIFIED, TopicNames


class _PayloadV2(BaseModel):
    qualification_id: str
    lead_id: str  # v1 nested it in payload.lead


class _LeadQualifiedV2(EventEnvelope):
    EVENT_TYPE: ClassVar[str] = "lead.qualified"
    schema_version: int = 2
    event_type: str = "lead.qualified"
    payload: _PayloadV2


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    payload = data["payload"]
    data["payload"] = {"qualification_id": payload["qualification_id"], "lead_id": payload["lead"]["lead_id"]}
    return data


async def test_a_v2_consumer_reads_v1_and_v2_events_from_the_real_broker(
    settings: Settings, topics: TopicNames, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(registry.UPCASTERS, ("lead.qualified", 1), _v1_to_v2)
    monkeypatch.setattr(registry, "current_versions", lambda: {"lead.qualified": 2})
    broker = create_broker(settings, client_id="jorge-upcast-test")
    received: asyncio.Queue[_LeadQualifiedV2] = asyncio.Queue()

    @broker.subscriber(topics(LEAD_QUALIFIED), **consumer_options(WorkerResources(settings), "upcast-test"))
    async def on_event(event: _LeadQualifiedV2) -> None:
        await received.put(event)

    v1 = LeadQualified.model_validate(
        {
            "organization_id": "org-1",
            "correlation_id": "req-1",
            "payload": {
                "qualification_id": "qual-1",
                "lead": {"lead_id": "lead-1"},
                "qualification": {
                    "intent": "buyer", "temperature": "hot", "next_action": "call",
                    "confidence": 0.9, "engine": "rules-v1",
                },
                "completed_at": "2026-01-01T00:00:00Z",
            },
        }
    )  # fmt: skip
    v2 = _LeadQualifiedV2(
        organization_id="org-1",
        correlation_id="req-2",
        payload=_PayloadV2(qualification_id="qual-2", lead_id="l2"),
    )
    await broker.start()
    try:
        publisher = KafkaPublisher(broker, settings.kafka_publish_timeout_seconds)
        await publisher.publish(event_message(v1, topic=topics(LEAD_QUALIFIED), key="same"))
        await publisher.publish(event_message(v2, topic=topics(LEAD_QUALIFIED), key="same"))
        first = await asyncio.wait_for(received.get(), 60)
        second = await asyncio.wait_for(received.get(), 30)
    finally:
        await broker.stop()
    assert (first.schema_version, first.payload.lead_id, first.event_id) == (2, "lead-1", v1.event_id)
    assert (second.schema_version, second.payload.lead_id) == (2, "l2")
