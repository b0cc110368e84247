"""Authentication: API keys and the short-lived access tokens (JWT) exchanged for them."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import jwt

from jorge_runtime.observability.metrics import CACHE_HITS, CACHE_MISSES
from services.gateway.tenancy import KEY_PREFIX, Caller, KeyRecord, TenancyStore, hash_key

ISSUER = "jorge"
CACHE_NAME = "api_key"  # the cache label of jorge_cache_hits_total / jorge_cache_misses_total
ALGORITHM = "HS256"


class AuthError(Exception):
    """Credentials that do not authenticate, with a machine code and a reason for a human."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.message = message


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """An access token and when it stops working."""

    token: str
    expires_in: int
    expires_at: datetime


class Authenticator:
    """Resolves `Bearer` credentials (API key or token) to callers.

    Key records are remembered for ``ttl_seconds`` (by hash, so no secret stays in memory):
    a revoked key, and every token issued for it, stops working within that time everywhere.
    Unknown keys are remembered as unknown for ``negative_ttl_seconds``, so a flood of wrong
    keys costs one query per key and interval, not one per request; a key created meanwhile
    works once that short time has passed.
    """

    def __init__(self, tenancy: TenancyStore, *, jwt_secret: str, ttl_seconds: float,
                 max_token_seconds: int, negative_ttl_seconds: float = 0.0,
                 max_entries: int = 10_000) -> None:  # fmt: skip
        self._tenancy = tenancy
        self._secret = jwt_secret
        self._ttl = ttl_seconds
        self._negative_ttl = negative_ttl_seconds
        self._max_token_seconds = max_token_seconds
        self._max_entries = max_entries
        self._cache: dict[bytes | str, tuple[KeyRecord | None, float]] = {}

    async def authenticate(self, credentials: str) -> Caller:
        """The caller behind an API key or an access token; AuthError says why not."""
        if credentials.startswith(KEY_PREFIX):
            return await self._by_key(credentials)
        if credentials.count(".") == 2:
            return await self._by_token(credentials)
        raise AuthError("invalid_credentials", "The bearer credential is neither an API key nor a token.")

    async def issue_token(self, api_key: str, expires_in: int | None) -> IssuedToken:
        """A signed token for the key's organisation, valid at most max_token_seconds."""
        caller = await self._by_key(api_key)
        lifetime = min(expires_in or self._max_token_seconds, self._max_token_seconds)
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": caller.key_id, "org": caller.organization_id, "iat": now,
                  "exp": now + lifetime, "jti": uuid.uuid4().hex}  # fmt: skip
        token = jwt.encode(claims, self._secret, algorithm=ALGORITHM)
        return IssuedToken(token, lifetime, datetime.fromtimestamp(now + lifetime, UTC))

    async def _by_key(self, secret: str) -> Caller:
        record = await self._record(hash_key(secret))
        if record is None:
            raise AuthError("invalid_api_key", "The API key is unknown.")
        if record.revoked:
            raise AuthError("api_key_revoked", "The API key has been revoked.")
        return record.caller

    async def _by_token(self, token: str) -> Caller:
        try:
            claims = jwt.decode(token, self._secret, algorithms=[ALGORITHM], issuer=ISSUER,
                                options={"require": ["exp", "iat", "sub", "org"]})  # fmt: skip
        except jwt.ExpiredSignatureError:
            raise AuthError(
                "token_expired", "The token has expired; get a new one from /v1/auth/token."
            ) from None
        except jwt.InvalidTokenError:
            raise AuthError("invalid_token", "The token is malformed or its signature is wrong.") from None
        record = await self._record(str(claims["sub"]))
        if record is not None and record.caller.organization_id != claims["org"]:
            raise AuthError("invalid_token", "The token is malformed or its signature is wrong.")
        if record is None or record.revoked:
            raise AuthError("api_key_revoked", "The API key this token was issued for has been revoked.")
        return record.caller

    async def _record(self, lookup: bytes | str) -> KeyRecord | None:
        now = time.monotonic()
        cached = self._cache.get(lookup)
        if cached is not None and cached[1] > now:
            CACHE_HITS.labels(CACHE_NAME).inc()
            return cached[0]
        CACHE_MISSES.labels(CACHE_NAME).inc()
        if isinstance(lookup, bytes):
            record = await self._tenancy.find_key(key_hash=lookup)
        else:
            record = await self._tenancy.find_key(key_id=lookup)
        ttl = self._ttl if record is not None else self._negative_ttl
        if ttl > 0:
            if len(self._cache) >= self._max_entries:
                self._cache.clear()  # a crude bound is enough: refilling costs one query per key
            self._cache[lookup] = (record, now + ttl)
        else:
            self._cache.pop(lookup, None)
        return record
