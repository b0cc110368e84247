"""What every worker shares: resources, consumer options, the error policy and its HTTP side."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from faststream import AckPolicy
from faststream.asgi import AsgiFastStream, AsgiResponse
from faststream.kafka import KafkaBroker

from jorge_runtime.db import create_pool
from jorge_runtime.heap import freeze_startup_heap
from jorge_runtime.idempotency import PublishedMarks
from jorge_runtime.kafka.background_consumers import BackgroundConsumers
from jorge_runtime.kafka.broker import KafkaPublisher
from jorge_runtime.kafka.error_policy import dead_letter_middleware
from jorge_runtime.kafka.offset_commits import OffsetCommits
from jorge_runtime.observability.error_reporting import init_error_reporting
from jorge_runtime.observability.health import check_assignments, check_dependencies, dead_consume_loops
from jorge_runtime.observability.process_metrics import Sampler, metrics_asgi_app, track_pool, untrack_pool
from jorge_runtime.observability.tracing import shutdown_tracing
from jorge_runtime.redis import create_redis
from jorge_runtime.settings import Settings
from schemas.topics import DEAD_LETTER, TopicNames

log = logging.getLogger(__name__)


class WorkerResources:
    """The pool and Redis client a worker opens at start and closes at stop, and the offsets its
    consumers handled but have not committed yet."""

    def __init__(self, settings: Settings, service: str | None = None) -> None:
        """``service`` names the pool's connections in PostgreSQL (jorge-<service>)."""
        settings.require("database_url", "redis_url")
        self._settings = settings
        self._service = service
        self._pool: asyncpg.Pool | None = None
        self._redis: aioredis.Redis | None = None
        self._published_marks: PublishedMarks | None = None
        self.offset_commits = OffsetCommits(settings.kafka_commit_interval_ms / 1000)

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("worker resources are not open")
        return self._pool

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            raise RuntimeError("worker resources are not open")
        return self._redis

    @property
    def published_marks(self) -> PublishedMarks:
        """Where the consumers' ledgers record the messages Kafka acknowledged (in batches)."""
        if self._published_marks is None:
            raise RuntimeError("worker resources are not open")
        return self._published_marks

    async def open(self) -> None:
        assert self._settings.database_url and self._settings.redis_url
        self._pool = await create_pool(
            self._settings.database_url,
            min_size=self._settings.database_pool_min_size,
            max_size=self._settings.database_pool_size,
            command_timeout=self._settings.database_command_timeout_seconds,
            application_name=f"jorge-{self._service}" if self._service else None,
        )
        self._redis = create_redis(self._settings.redis_url)
        self._published_marks = PublishedMarks(self._pool)

    async def close(self) -> None:
        if self._published_marks is not None:
            try:
                await self._published_marks.close()
            except Exception:  # a redelivery republishes what stays unmarked; close the rest
                log.warning("published marks not written at close", exc_info=True)
        if self._pool is not None:
            await self._pool.close()
        if self._redis is not None:
            await self._redis.aclose()


def consumer_options(resources: WorkerResources, service: str, *, background: bool = False) -> dict[str, Any]:
    """Subscriber options for at-least-once consumption in the service's own group.

    NACK_ON_ERROR: a message's offset is committed only after its handler returns (with the
    other handled offsets, every ``kafka_commit_interval_ms``: see
    jorge_runtime.kafka.offset_commits); an error seeks back. New groups start from the earliest
    offset so nothing published before they joined is missed. Fetches wait at most
    ``kafka_fetch_max_wait_ms`` for new records, or ``kafka_background_fetch_max_wait_ms`` for a
    ``background`` subscription (one that neither a lead's webhook nor a waiting HTTP caller
    depends on): the embedded broker re-reads its partitions until a fetch's wait ends, so each
    idle consumer with a short wait costs it CPU, and a record waits for its next look (at
    most half the wait).
    """
    settings = resources.settings
    commits = resources.offset_commits
    wait = settings.kafka_background_fetch_max_wait_ms if background else settings.kafka_fetch_max_wait_ms
    return {
        "group_id": f"{settings.kafka_consumer_group_prefix}{service}",
        "ack_policy": AckPolicy.NACK_ON_ERROR,
        "auto_offset_reset": "earliest",
        "fetch_max_wait_ms": wait,
        "parser": commits.parse,
        "listener": commits.listener(),
    }


def parallel_consumer_options(resources: WorkerResources, service: str) -> dict[str, Any]:
    """``consumer_options`` with ``kafka_consumer_concurrency`` consumers in the group (FastStream's
    ``max_workers``): one per partition share, each committing its own partitions' offsets after
    its handler returns, so partitions run in parallel and each stays in order (one topic only)."""
    options = consumer_options(resources, service)
    if resources.settings.kafka_consumer_concurrency > 1:
        options["max_workers"] = resources.settings.kafka_consumer_concurrency
    return options


def install_dead_letter_policy(
    broker: KafkaBroker, settings: Settings, service: str, resources: WorkerResources
) -> None:
    """Dead-letter this service's invalid and poison messages (stored for `jorge dlq` and
    published); wait out outages of Kafka, PostgreSQL or Redis (see jorge_runtime.kafka.error_policy)."""
    publisher = KafkaPublisher(broker, settings.kafka_publish_timeout_seconds)
    dead_letter_topic = TopicNames(settings.kafka_topic_prefix)(DEAD_LETTER)
    # Declared for the AsyncAPI document; the middleware publishes through KafkaPublisher.
    broker.publisher(dead_letter_topic, title=f"{service}.dead_letter", description=DEAD_LETTER.description)

    async def dependencies_down() -> list[str]:
        report = await check_dependencies(service, broker=broker, pool=resources.pool, redis=resources.redis)
        return sorted(name for name, part in report.components.items() if part.status == "down")

    broker.add_middleware(
        dead_letter_middleware(
            consumer=service,
            dead_letter_topic=dead_letter_topic,
            publish=publisher.publish,
            pool=lambda: resources.pool,
            outage=dependencies_down,
            max_attempts=settings.consumer_max_attempts,
            backoff_seconds=settings.consumer_retry_backoff_seconds,
        )
    )


def worker_app(
    service: str,
    broker: KafkaBroker,
    resources: WorkerResources,
    *,
    side_consumers: Mapping[str, BackgroundConsumers] | None = None,
) -> AsgiFastStream:
    """The worker as an ASGI app: the broker runs in its lifespan.

    Serves /health (liveness: the event loop answers and no consume loop has died; never a
    dependency check, so an outage restarts nothing), /health/ready (readiness: every consumer,
    ``side_consumers``' included, holds its partition assignment), /health/detailed (Kafka,
    PostgreSQL and Redis with latency, and each of ``side_consumers``, the worker's other Kafka
    clients by component name; 503 when one is down) and /metrics, like the gateway: its pool
    gauges are sampled every ``metrics_refresh_seconds`` and on each scrape.
    """
    brokers = [broker, *(consumers.broker for consumers in (side_consumers or {}).values())]
    init_error_reporting(resources.settings, service)
    sampler = Sampler(resources.settings.metrics_refresh_seconds)

    async def start_metrics() -> None:
        track_pool(service, resources.pool)
        await sampler.start()

    async def stop_metrics() -> None:
        await sampler.stop()
        untrack_pool(service)
        shutdown_tracing()

    async def live(scope: Any, receive: Any, send: Any) -> None:
        dead = dead_consume_loops(brokers)
        answer = {"status": "down", "dead_consumers": dead} if dead else {"status": "ok"}
        body = json.dumps({**answer, "service": service}).encode()
        await AsgiResponse(body, 503 if dead else 200, {"content-type": "application/json"})(
            scope, receive, send
        )

    async def assigned(scope: Any, receive: Any, send: Any) -> None:
        # The dependencies are checked too (bounded by their short timeout), only so that
        # jorge_external_service_up stays current between scrapes; they do not decide readiness.
        await check_dependencies(service, broker=broker, pool=resources.pool, redis=resources.redis)
        report = check_assignments(service, brokers)
        body = json.dumps(report.model_dump(mode="json")).encode()
        status = 200 if report.status == "ready" else 503
        await AsgiResponse(body, status, {"content-type": "application/json"})(scope, receive, send)

    async def ready(scope: Any, receive: Any, send: Any) -> None:
        report = await check_dependencies(
            service,
            broker=broker,
            pool=resources.pool,
            redis=resources.redis,
            side_consumers=side_consumers,
            consumer_grace_seconds=resources.settings.health_consumer_start_grace_seconds,
        )
        status = 200 if report.status == "ok" else 503
        body = json.dumps(report.model_dump(mode="json")).encode()
        await AsgiResponse(body, status, {"content-type": "application/json"})(scope, receive, send)

    return AsgiFastStream(
        broker,
        asgi_routes=[
            ("/health", live),
            ("/health/ready", assigned),
            ("/health/detailed", ready),
            ("/metrics", metrics_asgi_app()),
        ],
        logger=logging.getLogger(f"jorge.{service}"),
        on_startup=[resources.open, start_metrics],
        after_startup=[freeze_startup_heap],
        # Handled offsets are committed first; from then on each message commits at once, so
        # the consumers the other hooks stop leave nothing handled uncommitted.
        on_shutdown=[resources.offset_commits.close, stop_metrics],
        after_shutdown=[resources.close],
    )
