"""The consumer error policy on the real broker: bugs are retried then dead-lettered, outages wait."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest
from faststream.asgi import AsgiFastStream

from jorge_runtime.settings import Settings
from schemas.leads import LeadQualificationRequested, LeadQualificationRequestedPayload, LeadToQualify
from schemas.qualification import Qualification
from schemas.topics import DEAD_LETTER, LEAD_QUALIFICATION_REQUESTED, TopicNames
from services.qualifier.app import create_app
from services.qualifier.engine import QualificationEngine
from services.qualifier.rules import RulesQualificationEngine
from tests.support.services import produce, read_topic


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


@pytest.fixture
def strict_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"consumer_max_attempts": 3, "consumer_retry_backoff_seconds": 0.01})


async def run_qualifier(settings: Settings, engine: QualificationEngine) -> AsyncIterator[AsgiFastStream]:
    app = create_app(settings, engine=engine)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


async def send_lead(settings: Settings, organization: str, lead_id: str) -> None:
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


async def wait_completed(pool: asyncpg.Pool, organization: str, lead_id: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    query = "SELECT status FROM qualifications WHERE organization_id = $1 AND lead_id = $2"
    while await pool.fetchval(query, organization, lead_id) != "completed":
        assert time.monotonic() < deadline, f"{lead_id} not completed"
        await asyncio.sleep(0.05)


async def test_a_failing_handler_is_retried_then_dead_lettered_and_the_stream_goes_on(
    strict_settings: Settings, topics: TopicNames, pool: asyncpg.Pool, organization: str
) -> None:
    engine = FlakyEngine("lead-bug", failures=1_000, error=lambda: RuntimeError("engine bug"))
    await send_lead(strict_settings, organization, "lead-bug")
    await send_lead(strict_settings, organization, "lead-after")
    assert strict_settings.kafka_bootstrap_servers
    async for _ in run_qualifier(strict_settings, engine):
        dead = await read_topic(
            strict_settings.kafka_bootstrap_servers, topics(DEAD_LETTER), until=lambda got: len(got) >= 1
        )
        await wait_completed(pool, organization, "lead-after")
    assert engine.calls == 3
    assert len(dead) == 1
    assert dead[0].key == "lead-bug"
    assert dead[0].headers["dlq-attempts"] == "3"
    assert dead[0].headers["dlq-error-type"] == "RuntimeError"
    assert dead[0].headers["dlq-reason"] == "RuntimeError: engine bug"


async def test_an_outage_is_waited_out_not_dead_lettered(
    strict_settings: Settings, topics: TopicNames, pool: asyncpg.Pool, organization: str
) -> None:
    engine = FlakyEngine(
        "lead-outage", failures=5, error=lambda: ConnectionRefusedError("database restarting")
    )
    await send_lead(strict_settings, organization, "lead-outage")
    async for _ in run_qualifier(strict_settings, engine):
        await wait_completed(pool, organization, "lead-outage")
    assert engine.calls == 6  # more than the 3 attempts a bug gets
    assert strict_settings.kafka_bootstrap_servers
    dead = await read_topic(
        strict_settings.kafka_bootstrap_servers, topics(DEAD_LETTER), until=lambda got: False, timeout=2
    )
    assert dead == []
