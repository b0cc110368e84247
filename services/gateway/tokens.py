"""POST /v1/auth/token: exchange an API key for a short-lived access token."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from services.gateway.auth import AuthError
from services.gateway.dependencies import Gateway, gateway
from services.gateway.errors import API_ERRORS, ApiError

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
    token_type: str = "Bearer"
    expires_in: int
    expires_at: datetime


@router.post("/v1/auth/token", response_model=TokenResponse, responses=API_ERRORS)
async def issue_token(body: TokenRequest, gw: Gateway = Depends(gateway)) -> TokenResponse:
    """Exchange an API key for a signed token that expires (at most `JWT_MAX_TTL_SECONDS`).

    A token stops working when it expires or when its API key is revoked."""
    try:
        issued = await gw.authenticator.issue_token(body.api_key, body.expires_in)
    except AuthError as exc:
        raise ApiError(401, exc.error, exc.message, {"WWW-Authenticate": "Bearer"}) from None
    return TokenResponse(token=issued.token, expires_in=issued.expires_in, expires_at=issued.expires_at)
