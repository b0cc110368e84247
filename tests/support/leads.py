"""Leads for the tests: a sample hot buyer, publishing qualification requests, a qualification
engine that fails on purpose, storing a qualified lead as the qualifier does, and waiting for
qualifications to complete."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx

from jorge_runtime.idempotency import EventLedger
from jorge_runtime.settings import Settings
from schemas.envelope import utc_now
from schemas.leads import LeadQualificationRequested, LeadQualificationRequestedPayload, LeadToQualify
from schemas.qualification import Qualification
from schemas.topics import LEAD_QUALIFICATION_REQUESTED, TopicNames
from services.qualifier.engine import QualificationEngine
from services.qualifier.repository import QualificationRepository
from services.qualifier.rules import RulesQualificationEngine, qualify_lead
from tests.support.services import produce
from tests.support.waiting import eventually

#: A hot buyer lead as a client posts it to POST /v1/leads/qualify.
HOT_BUYER = {
    "lead_id": "lead-001",
    "name": "Maria Lopez",
    "phone": "(909) 555-0143",
    "email": "maria@example.com",
    "message": "We're pre-approved for $750k and want a 3 bed in Victoria, moving in 2 months.",
}


class FlakyEngine(QualificationEngine):
    """Raises ``error()`` for the first ``failures`` calls about ``lead_id``, then qualifies."""

    name = "flaky"

    def __init__(self, lead_id: str, failures: int, error: Callable[[], Exception]) -> None:
        self.lead_id, self.failures, self.error = lead_id, failures, error
        self.calls = 0
        self._rules = RulesQualificationEngine()

    async def qualify(self, lead: LeadToQualify) -> Qualification:
        if lead.lead_id == self.lead_id:
            self.calls += 1
            if self.calls <= self.failures:
                raise self.error()
        return await self._rules.qualify(lead)


async def send_lead(settings: Settings, organization: str, lead_id: str) -> None:
    """Publish one qualification request for ``lead_id`` as the gateway would."""
    event = LeadQualificationRequested(
        organization_id=organization,
        correlation_id=f"req-{lead_id}",
        payload=LeadQualificationRequestedPayload(
            qualification_id=f"qual-{uuid.uuid4().hex[:12]}",
            lead=LeadToQualify(lead_id=lead_id, email="lead@example.com", message="buying in Ontario"),
        ),
    )
    assert settings.kafka_bootstrap_servers
    await produce(
        settings.kafka_bootstrap_servers,
        TopicNames(settings.kafka_topic_prefix)(LEAD_QUALIFICATION_REQUESTED),
        event.model_dump_json().encode(),
        key=lead_id,
    )


async def publish_events(
    settings: Settings, topics: TopicNames, events: list[LeadQualificationRequested]
) -> None:
    """Publish many qualification requests at once, each keyed by its lead."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", linger_ms=5)
    await producer.start()
    try:
        sends = [
            await producer.send(
                topics(LEAD_QUALIFICATION_REQUESTED),
                event.model_dump_json().encode(),
                key=event.payload.lead.lead_id.encode(),
            )
            for event in events
        ]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def completed_count(pool: asyncpg.Pool, organization_id: str) -> int:
    """How many of the organisation's qualifications are completed."""
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM qualifications WHERE organization_id = $1 AND status = 'completed'",
            organization_id,
        )
    )


async def wait_for_completed(pool: asyncpg.Pool, organization_id: str, n: int, timeout: float = 60) -> None:
    """Until ``n`` of the organisation's qualifications are completed."""

    async def enough() -> int | None:
        done = await completed_count(pool, organization_id)
        return None if done < n else done

    await eventually(enough, timeout, f"{n} completed qualifications", interval=0.05)


async def wait_completed(pool: asyncpg.Pool, organization: str, lead_id: str, timeout: float = 30) -> None:
    """Until the lead's qualification is stored as completed."""
    query = "SELECT status FROM qualifications WHERE organization_id = $1 AND lead_id = $2"

    async def completed() -> bool:
        return bool(await pool.fetchval(query, organization, lead_id) == "completed")

    await eventually(completed, timeout, f"{lead_id} completed", interval=0.05)


async def wait_until_qualified(
    client: httpx.AsyncClient, lead_id: str, timeout: float = 30
) -> dict[str, Any]:
    """The lead's qualification as GET /v1/leads/{id}/qualification shows it, once completed."""

    async def completed() -> dict[str, Any] | None:
        response = await client.get(f"/v1/leads/{lead_id}/qualification")
        if response.status_code == 200 and response.json()["status"] == "completed":
            return dict(response.json())
        return None

    return await eventually(completed, timeout, f"{lead_id} completed")


async def store_qualified(
    pool: asyncpg.Pool, organization_id: str, lead: LeadToQualify, qualification_id: str, correlation_id: str
) -> None:
    """Store ``lead`` qualified by the rules, through the qualifier's own statement (a fresh
    event, nothing staged to publish)."""
    ledger = EventLedger(pool, "test-seed")
    stored = await QualificationRepository(expires_after_days=7).save_completed_once(
        ledger, uuid.uuid4(), [], organization_id=organization_id, qualification_id=qualification_id,
        lead=lead, qualification=qualify_lead(lead), correlation_id=correlation_id, completed_at=utc_now(),
    )  # fmt: skip
    assert stored
