"""The Redis client used for rate-limit counters and caches."""

from __future__ import annotations

import redis.asyncio as aioredis


def create_redis(url: str) -> aioredis.Redis:
    """A pooled client; it connects lazily, so building it never blocks start-up."""
    return aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30)
