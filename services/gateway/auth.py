"""API-key authentication with a short-lived cache, so most requests skip the database."""

from __future__ import annotations

import time

from jorge_runtime.tenancy import Caller, TenancyStore, hash_key


class Authenticator:
    """Resolves API keys to callers, remembering live keys for ``ttl_seconds``.

    Only valid keys are cached (a wrong key always reaches the database), keyed by hash so no
    secret stays in memory; a revoked key stops working within ``ttl_seconds`` everywhere.
    """

    def __init__(self, tenancy: TenancyStore, ttl_seconds: float, max_entries: int = 10_000) -> None:
        self._tenancy = tenancy
        self._ttl = ttl_seconds
        self._max_entries = max_entries
        self._cache: dict[bytes, tuple[Caller, float]] = {}

    async def authenticate(self, secret: str) -> Caller | None:
        """The caller of a live key, or None."""
        key_hash = hash_key(secret)
        now = time.monotonic()
        cached = self._cache.get(key_hash)
        if cached is not None and cached[1] > now:
            return cached[0]
        caller = await self._tenancy.authenticate_hash(key_hash)
        if caller is None:
            self._cache.pop(key_hash, None)
        elif self._ttl > 0:
            if len(self._cache) >= self._max_entries:
                self._cache.clear()  # a crude bound is enough: refilling costs one query per key
            self._cache[key_hash] = (caller, now + self._ttl)
        return caller
