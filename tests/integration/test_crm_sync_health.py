"""crm_sync's readiness covers its side Kafka clients (GHL sync, webhook delivery), and the
worker runs the periodic purge."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from jorge_cli.stack import EmbeddedStack
from jorge_runtime.settings import Settings
from tests.integration.test_crm_sync_worker import eventually
from tests.support.services import ServiceProcess

SIDES = ("kafka_ghl", "kafka_webhooks")


async def test_side_brokers_are_reported_and_fail_readiness_once_kafka_is_gone(
    own_broker: tuple[EmbeddedStack, Settings], pool: asyncpg.Pool, log_dir: Path
) -> None:
    broker, settings = own_broker
    started_at = datetime.now(UTC)
    worker = ServiceProcess.worker(
        "crm_sync", settings.model_copy(update={"retention_interval_seconds": 1}), log_dir
    )
    await worker.start()
    try:
        async with httpx.AsyncClient(base_url=worker.base_url, timeout=15) as client:

            async def sides_ready() -> dict[str, Any] | None:
                response = await client.get("/health/detailed")
                report: dict[str, Any] = response.json()
                components = report["components"]
                assert all(components[side]["status"] in ("starting", "ok") for side in SIDES), report
                assert response.status_code == 200, report  # starting does not fail readiness
                return report if all(components[side]["status"] == "ok" for side in SIDES) else None

            ready = await eventually(sides_ready, what="side brokers started")
            for side, consumers in (("kafka_ghl", 9), ("kafka_webhooks", 4)):
                assert ready["components"][side] | {"latency_ms": 0} == {
                    "status": "ok",
                    "latency_ms": 0,
                    "started": True,
                    "connected": True,
                    "consumers": consumers,  # GHL: 4 intake, 2 lanes, the delay queue, 2 follow-ups
                    "consumers_running": consumers,
                    "error": None,
                }

            async def purged() -> bool:
                finished = await pool.fetchval("SELECT finished_at FROM retention_runs WHERE name = 'purge'")
                return finished is not None and finished > started_at

            await eventually(purged, what="the periodic purge run by crm_sync")

            broker.stop()
            down = await client.get("/health/detailed")
    finally:
        worker.stop()

    assert down.status_code == 503
    components = down.json()["components"]
    assert components["kafka"]["status"] == "down"
    for side in SIDES:
        assert components[side]["status"] == "down"
        assert components[side]["connected"] is False
        assert components[side]["error"] == "no cluster metadata"
