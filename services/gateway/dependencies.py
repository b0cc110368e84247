"""What the gateway's routes depend on: its resources and the authenticated caller."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated

import asyncpg
import redis.asyncio as aioredis
from fastapi import Depends, Request
from faststream.kafka import KafkaBroker

from jorge_runtime.credential_cipher import CredentialCipher
from jorge_runtime.kafka.broker import KafkaPublisher
from jorge_runtime.settings import Settings
from schemas.limits import QUOTAS
from schemas.topics import TopicNames
from services.gateway.auth import Authenticator, AuthError
from services.gateway.buyer_repository import BuyerRepository
from services.gateway.errors import ApiError
from services.gateway.idempotency import IdempotencyStore, claim_request
from services.gateway.lead_repository import LeadRepository
from services.gateway.limits import Applied, Decision, LimiterUnavailable, RateLimiter, applied_limits
from services.gateway.local_limits import LocalLimiter
from services.gateway.outbox import GatewayOutbox
from services.gateway.results import ResultWaiter
from services.gateway.seller_repository import SellerRepository
from services.gateway.subscription_repository import WebhookRepository
from services.gateway.tenancy import Caller


@dataclass(slots=True)
class Gateway:
    """Everything the composition root built for the routes."""

    settings: Settings
    pool: asyncpg.Pool
    redis: aioredis.Redis
    broker: KafkaBroker
    publisher: KafkaPublisher
    outbox: GatewayOutbox
    idempotency: IdempotencyStore
    topics: TopicNames
    authenticator: Authenticator
    limiter: RateLimiter
    local_limiter: LocalLimiter
    leads: LeadRepository
    buyers: BuyerRepository
    sellers: SellerRepository
    webhooks: WebhookRepository
    results: ResultWaiter
    #: Seals webhook signing secrets (CRM_CREDENTIALS_KEY); None: registration answers 503.
    webhook_cipher: CredentialCipher | None = None


def resources(request: Request) -> Gateway:
    """The gateway's resources, set up by the lifespan."""
    return request.app.state.gateway


async def gateway(request: Request) -> Gateway:
    """Dependency form of resources(); async so FastAPI does not hand it to a thread."""
    return resources(request)


_CHALLENGE = {"WWW-Authenticate": "Bearer"}
_limiter_log = logging.getLogger("services.gateway.limits")


async def authenticated_caller(request: Request) -> Caller:
    """Authenticate `Authorization: Bearer <API key or token>` and count the request.

    401 for missing, unknown, expired, tampered or revoked credentials; 429 past a limit.
    The X-RateLimit-* headers go on the response whatever its status.
    """
    gw = resources(request)
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise ApiError(
            401, "missing_credentials", "Send `Authorization: Bearer <API key or token>`.", _CHALLENGE
        )
    try:
        caller = await gw.authenticator.authenticate(credentials.strip())
    except AuthError as exc:
        raise ApiError(401, exc.error, exc.message, _CHALLENGE) from None
    route = request.scope.get("route")
    quota = QUOTAS.get((request.method, getattr(route, "path", "")))
    applied = applied_limits(caller, quota)
    decision: Decision | None
    try:
        decision = await gw.limiter.check(applied, caller.organization_id)
    except LimiterUnavailable:
        decision = _without_redis(gw, applied, quota)
    if decision is not None:
        enforce(request, decision)
    await claim_request(request, gw.idempotency, caller.organization_id)
    return caller


def enforce(request: Request, decision: Decision) -> None:
    """Put the X-RateLimit-* headers on the response; 429 if the decision refused."""
    request.state.response_headers = decision.headers()
    if not decision.allowed:
        raise ApiError(
            429, "rate_limit_exceeded", decision.message(), decision.headers(), decision.retry_after
        )


def _without_redis(gw: Gateway, applied: Applied, quota: str | None) -> Decision | None:
    """Redis is down: daily quotas of work fail closed (503), as does everything with
    RATE_LIMIT_FAIL_MODE=closed; otherwise the per-second and per-minute limits are kept by this
    process alone and the per-day request counts are not kept (they fail open)."""
    mode = gw.settings.rate_limit_fail_mode
    _limiter_log.warning("rate limiter unavailable", extra={"fail_mode": mode, "quota": quota})
    if mode == "closed" or quota is not None:
        raise ApiError(
            503,
            "rate_limiter_unavailable",
            "Rate limits cannot be checked right now; retry shortly.",
            {"Retry-After": "5"},
        )
    return gw.local_limiter.check(applied)


#: A route's gateway resources: ``gw: GatewayDep``.
GatewayDep = Annotated[Gateway, Depends(gateway)]
#: A route's authenticated (and counted) caller: ``caller: CallerDep``.
CallerDep = Annotated[Caller, Depends(authenticated_caller)]
