"""Redis adapter: what crm_sync last wrote to each GHL contact, as field fingerprints.

A cache, not a record: if an entry is lost (flush, expiry), the next event for that contact
sends its fields once more, which GHL applies as a no-op.
"""

from __future__ import annotations

import redis.asyncio as aioredis

#: Refreshed on every write; a contact untouched this long costs one redundant update.
TTL_SECONDS = 90 * 24 * 3600


class WrittenFields:
    """``crm:written:<location>:<contact id>`` -> {field: "<fingerprint>@<event time ms>"}."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

    @staticmethod
    def _key(location_id: str, contact_id: str) -> str:
        return f"crm:written:{location_id}:{contact_id}"

    async def get(self, location_id: str, contact_id: str) -> dict[str, str]:
        raw = await self._redis.hgetall(self._key(location_id, contact_id))
        return {_text(k): _text(v) for k, v in raw.items()}

    async def record(self, location_id: str, contact_id: str, entries: dict[str, str]) -> None:
        if not entries:
            return
        key = self._key(location_id, contact_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=entries)  # type: ignore[arg-type]
            pipe.expire(key, TTL_SECONDS)
            await pipe.execute()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
