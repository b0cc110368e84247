"""When Kafka goes away the gateway answers 503 and stores nothing; health says which part is down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from jorge_cli.stack import EmbeddedStack
from jorge_runtime.kafka_admin import ensure_topics
from jorge_runtime.settings import Settings
from schemas.topics import TopicNames
from tests.support.services import ServiceProcess


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[EmbeddedStack]:
    """A broker of this test's own, so stopping it disturbs no other test."""
    stack = EmbeddedStack(tmp_path / "broker")
    yield stack
    stack.stop()


async def test_kafka_down_means_503_and_nothing_half_written(
    own_broker: EmbeddedStack, settings: Settings, pool: asyncpg.Pool, api_key: str, log_dir: Path
) -> None:
    bootstrap = own_broker.start(kafka=True, postgres=False, redis=False).kafka_bootstrap_servers
    assert bootstrap
    settings = settings.model_copy(
        update={
            "kafka_bootstrap_servers": bootstrap,
            "kafka_enable_idempotence": False,
            "kafka_publish_timeout_seconds": 2.0,
        }
    )
    await ensure_topics(bootstrap, TopicNames(settings.kafka_topic_prefix).all())
    gateway = await ServiceProcess.gateway(settings, log_dir).start()
    try:
        async with httpx.AsyncClient(
            base_url=gateway.base_url, timeout=15, headers={"Authorization": f"Bearer {api_key}"}
        ) as client:
            lead = {"lead_id": "before", "phone": "+19095550143", "message": "buying"}
            assert (await client.post("/v1/leads/qualify", json=lead)).status_code == 201

            own_broker.stop()
            response = await client.post("/v1/leads/qualify", json={**lead, "lead_id": "during"})
            health = await client.get("/health/detailed")
    finally:
        gateway.stop()

    assert response.status_code == 503
    assert response.json()["error"] == "event_bus_unavailable"
    assert response.headers["retry-after"]
    assert await pool.fetchval("SELECT count(*) FROM leads WHERE lead_id = 'during'") == 0
    assert await pool.fetchval("SELECT count(*) FROM qualifications WHERE lead_id = 'during'") == 0
    assert health.status_code == 503
    assert health.json()["components"]["kafka"]["status"] == "down"
    assert health.json()["components"]["postgresql"]["status"] == "ok"
