"""The qualifier against the real broker and PostgreSQL: crashes, poison and redelivery."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from jorge_runtime.settings import Settings
from schemas.leads import LeadQualificationRequested, LeadQualificationRequestedPayload, LeadToQualify
from schemas.topics import DEAD_LETTER, LEAD_QUALIFICATION_REQUESTED, LEAD_QUALIFIED, TopicNames
from tests.support.leads import completed_count, publish_events, wait_for_completed
from tests.support.services import KafkaRecord, ServiceProcess, produce, read_topic


@pytest.fixture
async def qualifier(settings: Settings, topics: TopicNames, log_dir: Path) -> AsyncIterator[ServiceProcess]:
    service = ServiceProcess.worker("qualifier", settings, log_dir)
    yield service
    service.stop()


def lead_event(organization_id: str, n: int) -> LeadQualificationRequested:
    return LeadQualificationRequested(
        organization_id=organization_id,
        correlation_id=f"req-{n}",
        payload=LeadQualificationRequestedPayload(
            qualification_id=f"qual-{organization_id}-{n:05d}",
            lead=LeadToQualify(
                lead_id=f"lead-{n:05d}",
                phone="+19095550143",
                message=f"Pre-approved, looking for a {2 + n % 3} bed in Upland within {1 + n % 9} months",
            ),
        ),
    )


def by_qualification(records: list[KafkaRecord]) -> dict[str, set[str]]:
    event_ids: dict[str, set[str]] = defaultdict(set)
    for record in records:
        body = record.json()
        event_ids[body["payload"]["qualification_id"]].add(body["event_id"])
    return event_ids


async def test_killed_mid_stream_loses_nothing_and_never_publishes_twice(
    settings: Settings, topics: TopicNames, pool: asyncpg.Pool, organization: str, qualifier: ServiceProcess
) -> None:
    total = 300
    await publish_events(settings, topics, [lead_event(organization, n) for n in range(total)])
    await qualifier.start()
    await wait_for_completed(pool, organization, 40)
    qualifier.kill()
    killed_at = await completed_count(pool, organization)
    assert killed_at < total, "the worker finished before it could be killed; raise the total"

    await qualifier.start()
    await wait_for_completed(pool, organization, total)

    assert settings.kafka_bootstrap_servers
    records = await read_topic(
        settings.kafka_bootstrap_servers,
        topics(LEAD_QUALIFIED),
        until=lambda got: len(by_qualification(got)) >= total,
    )
    published = by_qualification(records)
    assert len(published) == total
    # A crash between Kafka's ack and the outbox update may resend a message, but always with
    # the same event id, so downstream deduplication sees one event per qualification. Each of
    # the worker's consumers has at most one message in that window when it is killed.
    assert all(len(ids) == 1 for ids in published.values())
    assert len(records) - total <= settings.kafka_consumer_concurrency


async def test_poison_messages_go_to_dead_letter_and_later_leads_complete(
    settings: Settings, topics: TopicNames, pool: asyncpg.Pool, organization: str, qualifier: ServiceProcess
) -> None:
    assert settings.kafka_bootstrap_servers
    request_topic = topics(LEAD_QUALIFICATION_REQUESTED)
    await produce(settings.kafka_bootstrap_servers, request_topic, b"\xff\xfe not json", key="lead-x")
    await produce(
        settings.kafka_bootstrap_servers,
        request_topic,
        b'{"event_type": "lead.qualification_requested", "payload": {}}',
        key="lead-y",
        headers={"correlation-id": "req-poison"},
    )
    await publish_events(settings, topics, [lead_event(organization, 1)])
    await qualifier.start()

    await wait_for_completed(pool, organization, 1)
    dead = await read_topic(
        settings.kafka_bootstrap_servers, topics(DEAD_LETTER), until=lambda got: len(got) >= 2
    )
    assert len(dead) == 2
    assert {r.key for r in dead} == {"lead-x", "lead-y"}
    for record in dead:
        assert record.headers["dlq-consumer"] == "qualifier"
        assert record.headers["dlq-origin-topic"] == request_topic
        assert record.headers["dlq-origin-offset"].isdigit()
        assert record.headers["dlq-reason"]
    schema_failure = next(r for r in dead if r.key == "lead-y")
    assert "organization_id" in schema_failure.headers["dlq-reason"]
    assert schema_failure.headers["correlation-id"] == "req-poison"
    assert schema_failure.value.startswith(b'{"event_type"')


async def test_a_redelivered_event_changes_nothing(
    settings: Settings, topics: TopicNames, pool: asyncpg.Pool, organization: str, qualifier: ServiceProcess
) -> None:
    event = lead_event(organization, 7)
    await publish_events(settings, topics, [event, event])
    await publish_events(settings, topics, [lead_event(organization, 8)])  # a marker after both
    await qualifier.start()
    await wait_for_completed(pool, organization, 2)

    assert settings.kafka_bootstrap_servers
    records = await read_topic(
        settings.kafka_bootstrap_servers, topics(LEAD_QUALIFIED), until=lambda got: len(got) >= 2, timeout=10
    )
    await asyncio.sleep(1)  # give a wrongful second publish time to land
    records = await read_topic(
        settings.kafka_bootstrap_servers, topics(LEAD_QUALIFIED), until=lambda got: len(got) > 2, timeout=3
    )
    assert sorted(r.json()["payload"]["qualification_id"] for r in records) == [
        f"qual-{organization}-00007",
        f"qual-{organization}-00008",
    ]
