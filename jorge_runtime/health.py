"""Dependency health checks with latency, shared by the gateway and the workers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Literal

import asyncpg
import redis.asyncio as aioredis
from faststream.kafka import KafkaBroker
from pydantic import BaseModel

from jorge_runtime.background_consumers import BackgroundConsumers, ConsumersState
from jorge_runtime.metrics import EXTERNAL_UP

CHECK_TIMEOUT_SECONDS = 2.0
# Component names in the report -> the dependency label of jorge_external_service_up.
_DEPENDENCY_LABELS = {"kafka": "kafka", "postgresql": "database", "redis": "redis"}


class ComponentHealth(BaseModel):
    """One dependency's state as seen from this process."""

    status: Literal["ok", "down"]
    latency_ms: float
    error: str | None = None


class ConsumersHealth(BaseModel):
    """A worker's side Kafka client (its own broker and consumers): started? connected?

    ``starting`` (not yet started, within the grace period) does not fail readiness.
    """

    status: Literal["ok", "starting", "down"]
    latency_ms: float
    started: bool
    connected: bool
    consumers: int
    consumers_running: int
    error: str | None = None


class HealthReport(BaseModel):
    """Answer of /health/detailed: ok only when every dependency is."""

    status: Literal["ok", "degraded"]
    service: str
    components: dict[str, ConsumersHealth | ComponentHealth]


def consumers_verdict(
    state: ConsumersState, *, connected: bool, grace_seconds: float
) -> tuple[Literal["ok", "starting", "down"], str | None]:
    """Readiness of side consumers from their state and a ping of their broker: down once
    stopped, not started after the grace period, with a consume loop gone, or disconnected."""
    if state.stopped:
        return "down", "stopped"
    if not state.started:
        if state.seconds_since_start < grace_seconds:
            return "starting", state.last_error
        reason = f"not started after {grace_seconds:g}s"
        return "down", f"{reason}: {state.last_error}" if state.last_error else reason
    if state.loops_alive < state.loops:
        return "down", f"{state.loops - state.loops_alive} of {state.loops} consumers stopped"
    if not connected:
        return "down", "no cluster metadata"
    return "ok", None


async def check_consumers(consumers: BackgroundConsumers, grace_seconds: float) -> ConsumersHealth:
    """One side Kafka client's readiness (its broker pinged only once it has started)."""
    started = time.perf_counter()
    state = consumers.state()
    connected = False
    if state.started and not state.stopped:
        connected = (await _timed(lambda: _ping_kafka(consumers.broker))).status == "ok"
    status, error = consumers_verdict(state, connected=connected, grace_seconds=grace_seconds)
    return ConsumersHealth(
        status=status,
        latency_ms=round((time.perf_counter() - started) * 1000, 2),
        started=state.started,
        connected=connected,
        consumers=state.loops,
        consumers_running=state.loops_alive,
        error=error,
    )


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
    service: str,
    *,
    broker: KafkaBroker,
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    side_consumers: Mapping[str, BackgroundConsumers] | None = None,
    consumer_grace_seconds: float = 60.0,
) -> HealthReport:
    """Check Kafka, PostgreSQL and Redis concurrently, each bounded by a short timeout, and
    each side Kafka client (``side_consumers``, by component name) of a worker that has some.

    Each result also sets jorge_external_service_up: readiness probes (every 10 s in
    deploy/k8s) keep it current, and its average over time is the dependency's availability.
    """
    sides = dict(side_consumers or {})
    (kafka, postgres, redis_health), side_health = await asyncio.gather(
        asyncio.gather(
            _timed(lambda: _ping_kafka(broker)),
            _timed(lambda: pool.fetchval("SELECT 1")),
            _timed(redis.ping),
        ),
        asyncio.gather(*(check_consumers(consumers, consumer_grace_seconds) for consumers in sides.values())),
    )
    dependencies = {"kafka": kafka, "postgresql": postgres, "redis": redis_health}
    for name, component in dependencies.items():
        EXTERNAL_UP.labels(service, _DEPENDENCY_LABELS[name]).set(1 if component.status == "ok" else 0)
    components: dict[str, ConsumersHealth | ComponentHealth] = {
        **dependencies,
        **dict(zip(sides, side_health, strict=True)),
    }
    healthy = all(c.status != "down" for c in components.values())
    return HealthReport(status="ok" if healthy else "degraded", service=service, components=components)
