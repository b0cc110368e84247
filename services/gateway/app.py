"""Composition root of the gateway: settings in, a FastAPI app out; connects only at start."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from jorge_runtime.db import create_pool
from jorge_runtime.heap import freeze_startup_heap
from jorge_runtime.kafka.broker import KafkaPublisher, create_broker
from jorge_runtime.kafka.lag import LagMonitor
from jorge_runtime.observability.error_reporting import init_error_reporting
from jorge_runtime.observability.process_metrics import Sampler, mark_process_dead, track_pool, untrack_pool
from jorge_runtime.observability.tracing import FASTAPI_NATIVE_TELEMETRY_OFF, instrument_app, shutdown_tracing
from jorge_runtime.redis import create_redis
from jorge_runtime.settings import Settings
from jorge_runtime.webhook_secrets import encrypt_plaintext_at_start, webhook_secret_cipher
from schemas.topics import TopicNames
from services.gateway import (
    asyncapi,
    buyers,
    follow_ups,
    ghl_webhooks,
    health,
    idempotency,
    leads,
    sellers,
    subscriptions,
    tokens,
)
from services.gateway.admin_port import AdminPortMiddleware
from services.gateway.auth import Authenticator
from services.gateway.buyer_repository import BuyerRepository
from services.gateway.dependencies import Gateway
from services.gateway.errors import install_error_handlers
from services.gateway.idempotency import IdempotencyStore
from services.gateway.lead_repository import LeadRepository
from services.gateway.limits import RateLimiter
from services.gateway.local_limits import LocalLimiter
from services.gateway.metrics import HttpMetricsMiddleware, metrics_router
from services.gateway.middleware import EdgeMiddleware
from services.gateway.outbox import BusState, GatewayOutbox
from services.gateway.results import ResultWaiter
from services.gateway.seller_repository import SellerRepository
from services.gateway.subscription_repository import WebhookRepository
from services.gateway.tenancy import TenancyStore


def create_app(settings: Settings) -> FastAPI:
    """Build the gateway; pools and the Kafka producer open in the lifespan."""
    settings.require("kafka_bootstrap_servers", "database_url", "redis_url", "jwt_secret")
    assert settings.database_url and settings.redis_url and settings.jwt_secret
    init_error_reporting(settings, "gateway")
    webhook_cipher = webhook_secret_cipher(settings.crm_credentials_key)  # a bad key stops the start

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        assert settings.database_url and settings.redis_url
        broker = create_broker(settings, client_id="jorge-gateway", producer_only=True)
        pool = await create_pool(
            settings.database_url,
            min_size=settings.database_pool_min_size,
            max_size=settings.database_pool_size,
            command_timeout=settings.database_command_timeout_seconds,
            application_name="jorge-gateway",
        )
        redis = create_redis(settings.redis_url)
        results = ResultWaiter(settings.database_url, pool)
        sampler = Sampler(settings.metrics_refresh_seconds)
        lag = LagMonitor.for_settings(settings)
        lag_task: asyncio.Task[None] | None = None
        idempotency_keys = IdempotencyStore(
            pool,
            ttl_seconds=settings.idempotency_key_ttl_hours * 3600,
            wait_seconds=settings.idempotency_wait_seconds,
        )
        purge_task: asyncio.Task[None] | None = None
        publisher = KafkaPublisher(broker, settings.kafka_publish_timeout_seconds)
        outbox = GatewayOutbox(
            pool,
            publisher,
            BusState(),
            broker.ping,
            # Past the hot path's own publish attempt, so the relay does not race it.
            grace_seconds=2 * settings.kafka_publish_timeout_seconds + 1,
        )
        try:
            await broker.connect()
            await encrypt_plaintext_at_start(pool, webhook_cipher, "gateway")
            await results.start()
            await outbox.start()
            purge_task = asyncio.get_running_loop().create_task(idempotency_keys.purge_forever())
            track_pool("gateway", pool)
            await sampler.start()
            if lag is not None:
                lag_task = asyncio.get_running_loop().create_task(lag.run())
            app.state.gateway = Gateway(
                settings=settings,
                pool=pool,
                redis=redis,
                broker=broker,
                publisher=publisher,
                outbox=outbox,
                idempotency=idempotency_keys,
                topics=TopicNames(settings.kafka_topic_prefix),
                authenticator=Authenticator(
                    TenancyStore(pool),
                    jwt_secret=settings.jwt_secret or "",
                    ttl_seconds=settings.auth_cache_seconds,
                    max_token_seconds=settings.jwt_max_ttl_seconds,
                    negative_ttl_seconds=settings.auth_negative_cache_seconds,
                ),
                limiter=RateLimiter(redis),
                local_limiter=LocalLimiter(),
                leads=LeadRepository(
                    stale_after_seconds=settings.qualification_stale_after_seconds,
                    expires_after_days=settings.qualification_expires_after_days,
                ),
                buyers=BuyerRepository(),
                sellers=SellerRepository(),
                webhooks=WebhookRepository(),
                results=results,
                webhook_cipher=webhook_cipher,
            )
            freeze_startup_heap()
            yield
        finally:
            for task in (lag_task, purge_task):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await sampler.stop()
            await outbox.stop()
            untrack_pool("gateway")
            await results.stop()
            await broker.stop()
            await pool.close()
            await redis.aclose()
            shutdown_tracing()
            mark_process_dead()

    app = FastAPI(
        title="Jorge Platform API",
        version="1.0.0",
        description="Qualify leads, match buyers, price sellers' homes. Authenticate with "
        "`Authorization: Bearer <API key or access token>`; errors are `{error, message}`; "
        "every response carries the X-RateLimit-* headers of the tightest limit.",
        lifespan=lifespan,
        # EdgeMiddleware answers oversize /v1 bodies, declared or chunked, in the error model.
        # This outer limit (Starlette's, counted as EdgeMiddleware reads) is only a backstop for
        # other paths: above EdgeMiddleware's, or it would answer first, outside the error model.
        max_body_size=settings.max_request_bytes * 2,
        telemetry=FASTAPI_NATIVE_TELEMETRY_OFF,
    )
    install_error_handlers(app)

    app.add_middleware(EdgeMiddleware, max_body_bytes=settings.max_request_bytes)
    idempotency.install(app)  # outside EdgeMiddleware: it records answers with their headers
    if settings.metrics_enabled:
        # Added last, so outermost: it also times and counts what EdgeMiddleware refuses.
        app.add_middleware(HttpMetricsMiddleware)
    if settings.admin_port is not None:
        # Outermost: a refused path is neither timed, traced nor counted as API traffic.
        app.add_middleware(AdminPortMiddleware, admin_port=settings.admin_port)
    instrument_app(app, settings, "gateway")
    app.include_router(metrics_router())
    app.include_router(leads.router)
    app.include_router(health.router)
    app.include_router(tokens.router)
    app.include_router(buyers.router)
    app.include_router(sellers.router)
    app.include_router(subscriptions.router)
    app.include_router(follow_ups.router)  # /v1/leads/{id}/follow-ups, /events, /v1/follow-ups/settings
    app.include_router(ghl_webhooks.router)  # /v1/ghl/webhooks: GHL's signed webhooks
    app.include_router(asyncapi.router)  # /asyncapi, /asyncapi.json: the event contract
    return app


def create_app_from_environment() -> FastAPI:
    """uvicorn factory: settings from the environment (used with several worker processes)."""
    from jorge_runtime.observability.logs import configure_logging
    from jorge_runtime.settings import load_settings

    settings = load_settings()
    configure_logging("gateway", settings.log_level)
    return create_app(settings)
