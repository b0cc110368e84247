"""Probes mean what they say, against real processes: a worker is ready once its consumers hold
their partitions; the gateway's readiness ignores Redis while rate limits fail open; with
ADMIN_PORT, metrics and the detailed health are served there and not on the API port."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from jorge_cli.stack import free_port
from jorge_runtime.settings import Settings
from schemas.topics import TopicNames
from tests.support.services import ServiceProcess


async def test_worker_is_ready_once_its_consumers_hold_their_partitions(
    settings: Settings, topics: TopicNames, log_dir: Path
) -> None:
    worker = await ServiceProcess.worker("matcher", settings, log_dir).start()
    try:
        async with httpx.AsyncClient(base_url=worker.base_url, timeout=5) as client:
            assert (await client.get("/health")).json() == {"status": "ok", "service": "matcher"}
            deadline = time.monotonic() + 60
            while (ready := await client.get("/health/ready")).status_code != 200:
                assert ready.status_code == 503, ready.text
                assert ready.json()["status"] == "not_ready" and ready.json()["waiting_for"]
                assert time.monotonic() < deadline, ready.text
                await asyncio.sleep(0.2)
    finally:
        worker.stop()
    report = ready.json()
    assert report["status"] == "ready" and report["waiting_for"] == []
    assert report["consumers"] == report["consumers_assigned"] >= 2
    # One replica: it holds every partition of its topics (6 each, schemas/topics.py).
    assert report["partitions_assigned"] >= 6 * report["consumers"]


def _gateway_without_redis(settings: Settings, log_dir: Path, fail_mode: str) -> ServiceProcess:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    changed = settings.model_copy(
        update={"redis_url": dead_redis, "rate_limit_fail_mode": fail_mode, "admin_port": free_port()}
    )
    process = ServiceProcess.gateway(changed, log_dir)
    process.log_path = log_dir / f"gateway-{fail_mode}.log"
    return process


async def test_gateway_readiness_needs_redis_only_when_limits_fail_closed(
    settings: Settings, topics: TopicNames, log_dir: Path
) -> None:
    open_gw = _gateway_without_redis(settings, log_dir, "open")
    open_gw.argv += ["--workers", "2"]  # both ports shared by every uvicorn worker process
    closed_gw = _gateway_without_redis(settings, log_dir, "closed")
    try:
        await asyncio.gather(open_gw.start(), closed_gw.start())
        admin = f"http://127.0.0.1:{open_gw.env['ADMIN_PORT']}"
        async with httpx.AsyncClient(timeout=10) as client:
            ready_open = await client.get(f"{open_gw.base_url}/health/ready")
            ready_closed = await client.get(f"{closed_gw.base_url}/health/ready")
            detailed = await client.get(f"{admin}/health/detailed")
            metrics_admin = await client.get(f"{admin}/metrics")
            metrics_api = await client.get(f"{open_gw.base_url}/metrics")
            detailed_api = await client.get(f"{open_gw.base_url}/health/detailed")
            api_on_admin = await client.get(f"{admin}/v1/leads/x/qualification")
            probes_on_admin = [
                (await client.get(f"{admin}{p}")).status_code for p in ("/health", "/health/ready")
            ]
    finally:
        open_gw.stop()
        closed_gw.stop()

    assert ready_open.status_code == 200, ready_open.text
    assert ready_open.json()["components"]["redis"]["status"] == "down"  # reported, not required
    assert ready_closed.status_code == 503, ready_closed.text
    assert {ready_closed.json()["components"][c]["status"] for c in ("kafka", "postgresql")} == {"ok"}
    assert detailed.status_code == 503 and detailed.json()["components"]["redis"]["status"] == "down"
    assert metrics_admin.status_code == 200 and "jorge_external_service_up" in metrics_admin.text
    for refused in (metrics_api, detailed_api, api_on_admin):
        assert refused.status_code == 404 and refused.json()["error"] == "not_found"
    assert probes_on_admin == [200, 200]
