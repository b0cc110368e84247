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
from tests.support.services import ServiceProcess
from tests.support.waiting import eventually

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
    # crm_sync runs as two processes: the GHL sync (this one) and the webhook engine (its companion).
    halves = {"kafka_ghl": (worker, 9), "kafka_webhooks": (worker.companions[0], 4)}
    downs: dict[str, httpx.Response] = {}
    try:
        for side, (process, consumers) in halves.items():
            async with httpx.AsyncClient(base_url=process.base_url, timeout=15) as client:

                async def side_ready(
                    side: str = side, client: httpx.AsyncClient = client
                ) -> dict[str, Any] | None:
                    response = await client.get("/health/detailed")
                    report: dict[str, Any] = response.json()
                    components = report["components"]
                    assert components[side]["status"] in ("starting", "ok"), report
                    assert set(SIDES) & components.keys() == {side}, "each process runs one half"
                    assert response.status_code == 200, report  # starting does not fail readiness
                    return report if components[side]["status"] == "ok" else None

                ready = await eventually(side_ready, what=f"{side} started")
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
        async with httpx.AsyncClient(timeout=15) as client:
            for side, (process, _) in halves.items():
                downs[side] = await client.get(f"{process.base_url}/health/detailed")
    finally:
        worker.stop()

    for side, down in downs.items():
        assert down.status_code == 503
        components = down.json()["components"]
        assert components["kafka"]["status"] == "down"
        assert components[side]["status"] == "down"
        assert components[side]["connected"] is False
        assert components[side]["error"] == "no cluster metadata"
