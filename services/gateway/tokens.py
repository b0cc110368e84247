"""POST /v1/auth/token: exchange an API key for a short-lived access token."""

from __future__ import annotations

import hashlib
from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from schemas.limits import TOKEN_PER_CLIENT, TOKEN_PER_KEY
from services.gateway.auth import AuthError
from services.gateway.dependencies import Gateway, GatewayDep
from services.gateway.errors import API_ERRORS, ApiError
from services.gateway.limits import Applied, Decision, LimiterUnavailable

router = APIRouter(tags=["auth"])


class TokenRequest(BaseModel):
    """An API key to exchange, and how long the token should live."""

    api_key: str = Field(min_length=8, max_length=200)
    expires_in: int | None = Field(
        default=None, ge=60, description="Seconds; capped at the server's maximum (1 hour by default)."
    )


class TokenResponse(BaseModel):
    """A bearer token for `Authorization: Bearer <token>`."""

    token: str
    token_type: str = "Bearer"  # noqa: S105  a public prefix, example or token type, not a secret
    expires_in: int
    expires_at: datetime


@router.post("/v1/auth/token", response_model=TokenResponse, responses=API_ERRORS)
async def issue_token(body: TokenRequest, request: Request, gw: GatewayDep) -> TokenResponse:
    """Exchange an API key for a signed token that expires (at most `JWT_MAX_TTL_SECONDS`).

    A token stops working when it expires or when its API key is revoked. Attempts are limited
    per client address and per API key (valid or not): 429 past either."""
    await _count_attempt(request, gw, body.api_key)
    try:
        issued = await gw.authenticator.issue_token(body.api_key, body.expires_in)
    except AuthError as exc:
        raise ApiError(401, exc.error, exc.message, {"WWW-Authenticate": "Bearer"}) from None
    return TokenResponse(token=issued.token, expires_in=issued.expires_in, expires_at=issued.expires_at)


async def _count_attempt(request: Request, gw: Gateway, api_key: str) -> None:
    client = request.client.host if request.client else "unknown"
    # The key's hash, never the key, names its counter.
    key_digest = hashlib.sha256(api_key.encode()).hexdigest()[:32]
    applied: Applied = [
        (TOKEN_PER_CLIENT, gw.settings.token_requests_per_minute_per_ip, client),
        (TOKEN_PER_KEY, gw.settings.token_requests_per_minute_per_key, key_digest),
    ]
    decision: Decision | None
    try:
        decision = await gw.limiter.check(applied, "auth")
    except LimiterUnavailable:
        decision = gw.local_limiter.check(applied)  # no daily quota here: the replica keeps them
    if decision is not None and not decision.allowed:
        raise ApiError(
            429, "rate_limit_exceeded", decision.message(), decision.headers(), decision.retry_after
        )
