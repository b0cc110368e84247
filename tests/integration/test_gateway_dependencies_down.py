"""When Kafka or PostgreSQL goes away the gateway answers 503 and stores nothing it refused."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from jorge_cli.stack import EmbeddedStack
from jorge_runtime.settings import Settings
from schemas.topics import TopicNames
from tests.support.services import ServiceProcess


async def test_kafka_down_means_503_and_nothing_half_written(
    own_broker: tuple[EmbeddedStack, Settings], pool: asyncpg.Pool, api_key: str, log_dir: Path
) -> None:
    """Once the gateway knows Kafka is gone it refuses before writing anything. A request it
    committed before it knew (its publish then timed out) was accepted: stored with its event
    staged in the outbox for the relay, never answered 503."""
    broker, settings = own_broker
    gateway = await ServiceProcess.gateway(settings, log_dir).start()
    answers: dict[str, int] = {}
    try:
        async with httpx.AsyncClient(
            base_url=gateway.base_url, timeout=15, headers={"Authorization": f"Bearer {api_key}"}
        ) as client:
            lead = {"lead_id": "before", "phone": "+19095550143", "message": "buying"}
            assert (await client.post("/v1/leads/qualify", json=lead)).status_code == 201

            broker.stop()
            for n in range(10):
                response = await client.post("/v1/leads/qualify", json={**lead, "lead_id": f"during-{n}"})
                answers[f"during-{n}"] = response.status_code
                if response.status_code == 503:
                    break
            health = await client.get("/health/detailed")
    finally:
        gateway.stop()

    assert response.status_code == 503, answers
    assert response.json()["error"] == "event_bus_unavailable"
    assert response.headers["retry-after"]
    for lead_id, status in answers.items():
        stored = await pool.fetchval("SELECT count(*) FROM qualifications WHERE lead_id = $1", lead_id)
        staged = await pool.fetchval(
            """SELECT count(*) FROM outbox o JOIN qualifications q
                   ON convert_from(o.body, 'UTF8') LIKE '%' || q.qualification_id || '%'
                WHERE q.lead_id = $1 AND o.consumer = 'gateway' AND o.published_at IS NULL""",
            lead_id,
        )
        assert (status, stored, staged) in ((201, 1, 1), (503, 0, 0)), (lead_id, status, stored, staged)
        if status == 503:
            assert await pool.fetchval("SELECT count(*) FROM leads WHERE lead_id = $1", lead_id) == 0
    assert health.status_code == 503
    assert health.json()["components"]["kafka"]["status"] == "down"
    assert health.json()["components"]["postgresql"]["status"] == "ok"


@pytest.fixture
def own_postgres(stack_dir: Path) -> Iterator[EmbeddedStack]:
    """A PostgreSQL of this test's own, so stopping it disturbs no other test."""
    stack = EmbeddedStack(stack_dir)
    yield stack
    stack.stop()


async def test_postgres_down_means_503_not_500(
    own_postgres: EmbeddedStack, settings: Settings, topics: TopicNames, log_dir: Path
) -> None:
    from jorge_runtime.db import create_pool, migrate
    from services.gateway.tenancy import TenancyStore

    urls = await asyncio.to_thread(lambda: own_postgres.start(kafka=False, postgres=True, redis=False))
    database_url = urls.database_url
    assert database_url
    await migrate(database_url)
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        await TenancyStore(pool).create_organization("org-db-down", "DB Down Realty")
        key = (await TenancyStore(pool).issue_key("org-db-down", "test")).secret
    finally:
        await pool.close()
    gateway = await ServiceProcess.gateway(
        settings.model_copy(update={"database_url": database_url}), log_dir
    ).start()
    try:
        async with httpx.AsyncClient(
            base_url=gateway.base_url, timeout=15, headers={"Authorization": f"Bearer {key}"}
        ) as client:
            assert (await client.get("/v1/leads/x/qualification")).status_code == 404
            await asyncio.to_thread(own_postgres.stop)
            lead = {"lead_id": "db-down", "email": "a@example.com"}
            posted = await client.post("/v1/leads/qualify", json=lead)
            read = await client.get("/v1/leads/x/qualification")
    finally:
        gateway.stop()
    for response in (posted, read):
        assert response.status_code == 503, response.text
        assert response.json()["error"] == "dependency_unavailable"
        assert response.headers["retry-after"]
