"""Dependency health checks with latency, shared by the gateway and the workers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Literal

import asyncpg
import redis.asyncio as aioredis
from faststream.kafka import KafkaBroker
from pydantic import BaseModel

from jorge_runtime.metrics import EXTERNAL_UP

CHECK_TIMEOUT_SECONDS = 2.0
# Component names in the report -> the dependency label of jorge_external_service_up.
_DEPENDENCY_LABELS = {"kafka": "kafka", "postgresql": "database", "redis": "redis"}


class ComponentHealth(BaseModel):
    """One dependency's state as seen from this process."""

    status: Literal["ok", "down"]
    latency_ms: float
    error: str | None = None


class HealthReport(BaseModel):
    """Answer of /health/detailed: ok only when every dependency is."""

    status: Literal["ok", "degraded"]
    service: str
    components: dict[str, ComponentHealth]


async def _timed(check: Callable[[], Awaitable[object]]) -> ComponentHealth:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check(), timeout=CHECK_TIMEOUT_SECONDS)
    except Exception as exc:
        elapsed = (time.perf_counter() - started) * 1000
        reason = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
        return ComponentHealth(status="down", latency_ms=round(elapsed, 2), error=reason)
    return ComponentHealth(status="ok", latency_ms=round((time.perf_counter() - started) * 1000, 2))


async def _ping_kafka(broker: KafkaBroker) -> None:
    if not await broker.ping(timeout=CHECK_TIMEOUT_SECONDS):
        raise ConnectionError("no cluster metadata")


async def check_dependencies(
    service: str, *, broker: KafkaBroker, pool: asyncpg.Pool, redis: aioredis.Redis
) -> HealthReport:
    """Check Kafka, PostgreSQL and Redis concurrently, each bounded by a short timeout.

    Each result also sets jorge_external_service_up: readiness probes (every 10 s in
    deploy/k8s) keep it current, and its average over time is the dependency's availability.
    """
    kafka, postgres, redis_health = await asyncio.gather(
        _timed(lambda: _ping_kafka(broker)),
        _timed(lambda: pool.fetchval("SELECT 1")),
        _timed(redis.ping),
    )
    components = {"kafka": kafka, "postgresql": postgres, "redis": redis_health}
    for name, component in components.items():
        EXTERNAL_UP.labels(service, _DEPENDENCY_LABELS[name]).set(1 if component.status == "ok" else 0)
    healthy = all(c.status == "ok" for c in components.values())
    return HealthReport(status="ok" if healthy else "degraded", service=service, components=components)
