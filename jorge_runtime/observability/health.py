"""Dependency health checks with latency, shared by the gateway and the workers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Literal

import asyncpg
import redis.asyncio as aioredis
from faststream.kafka import KafkaBroker
from pydantic import BaseModel

from jorge_runtime.kafka.background_consumers import BackgroundConsumers, ConsumersState
from jorge_runtime.observability.metrics import EXTERNAL_UP

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
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            await check()
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

    Each result also sets jorge_external_service_up: readiness probes (/health/ready, every 5-10 s
    in deploy/k8s) keep it current, and its average over time is the dependency's availability.
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


class ReadinessReport(BaseModel):
    """Answer of a worker's /health/ready: ready once every consumer has joined its group and
    holds its assignment, so what is published now is consumed now."""

    status: Literal["ready", "not_ready"]
    service: str
    consumers: int
    consumers_assigned: int
    partitions_assigned: int
    waiting_for: list[str]


def consumer_assignment(subscriber: object) -> set[object] | None:
    """The partitions a FastStream Kafka subscriber's consumer holds, or None before its group
    gave it an assignment (an empty set: joined, but the group has more members than partitions).

    aiokafka's public ``assignment()`` answers an empty set in both cases, so this reads the
    subscription state it keeps; anything unexpected counts as "not assigned yet".
    """
    subgroup = getattr(subscriber, "consumer_subgroup", None)
    if subgroup:  # several consumers in one group (max_workers): ready once each is assigned
        held = [_assignment_of(consumer) for consumer in subgroup]
        return None if any(tps is None for tps in held) else set().union(*(tps or set() for tps in held))
    return _assignment_of(getattr(subscriber, "consumer", None))


def _assignment_of(consumer: object) -> set[object] | None:
    state = getattr(consumer, "_subscription", None)
    assignment = getattr(getattr(state, "subscription", None), "assignment", None)
    tps = getattr(assignment, "tps", None)
    return None if tps is None else set(tps)


def dead_consume_loops(brokers: Iterable[KafkaBroker]) -> list[str]:
    """Subscribers that run but whose consume loop has ended: a wedged worker (liveness)."""
    dead = []
    for broker in brokers:
        for subscriber in broker.subscribers:
            tasks = getattr(subscriber, "tasks", ())
            if getattr(subscriber, "running", False) and tasks and any(t.done() for t in tasks):
                dead.append(_subscriber_name(subscriber))
    return dead


def check_assignments(service: str, brokers: Iterable[KafkaBroker]) -> ReadinessReport:
    """Readiness of a worker: every subscriber of every one of its brokers has an assignment."""
    consumers = assigned = partitions = 0
    waiting = []
    for broker in brokers:
        for subscriber in broker.subscribers:
            consumers += 1
            tps = consumer_assignment(subscriber)
            if tps is None:
                waiting.append(_subscriber_name(subscriber))
            else:
                assigned += 1
                partitions += len(tps)
    return ReadinessReport(
        status="ready" if consumers and not waiting else "not_ready",
        service=service,
        consumers=consumers,
        consumers_assigned=assigned,
        partitions_assigned=partitions,
        waiting_for=waiting,
    )


def _subscriber_name(subscriber: object) -> str:
    topics = getattr(subscriber, "topic_names_for_subscribe", None) or ()
    return ",".join(str(t) for t in topics) or type(subscriber).__name__


async def check_gateway_readiness(
    *, broker: KafkaBroker, pool: asyncpg.Pool, redis: aioredis.Redis, redis_required: bool
) -> HealthReport:
    """Can the gateway take requests now: Kafka and PostgreSQL up, and Redis only when rate
    limits fail closed (failing open, requests go through without it). Every dependency is still
    checked and reported, so jorge_external_service_up stays current."""
    report = await check_dependencies("gateway", broker=broker, pool=pool, redis=redis)
    required = ["kafka", "postgresql"] + (["redis"] if redis_required else [])
    ready = all(report.components[name].status == "ok" for name in required)
    return report.model_copy(update={"status": "ok" if ready else "degraded"})
