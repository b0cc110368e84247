"""One GoHighLevel request budget per location, shared by every crm_sync replica through Redis.

A sliding log of granted requests (a sorted set, Redis's own clock) allows at most ``burst``
requests in any ``interval + margin`` milliseconds, and a counter per UTC day caps the daily
total. The limits start from settings and then follow GHL's X-RateLimit-* headers, because
real tokens differ (a trial token allows 25 per 10 s). The margin absorbs network jitter
between our grant and GHL's arrival time, so our own traffic never causes a 429. When the
budget is spent, callers wait; hot callers register as waiters and standard ones yield to them.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import redis.asyncio as aioredis

from jorge_runtime.metrics import GHL_BUDGET_REMAINING

Priority = Literal["hot", "standard"]

# KEYS[1] = key prefix of the location. ARGV: default burst, interval ms, daily, margin ms,
# priority, waiter id, request id. Returns {granted, wait_ms, burst_left, daily_left}.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local p = KEYS[1]
local lim = redis.call('HMGET', p .. 'limits', 'burst', 'interval', 'daily', 'blocked_until')
local burst = tonumber(lim[1]) or tonumber(ARGV[1])
local interval = tonumber(lim[2]) or tonumber(ARGV[2])
local daily = tonumber(lim[3]) or tonumber(ARGV[3])
local blocked = tonumber(lim[4]) or 0
local span = interval + tonumber(ARGV[4])
local hot = p .. 'hot'
local is_hot = ARGV[5] == 'hot'
local function deny(wait)
  if is_hot then
    redis.call('ZADD', hot, now, ARGV[6])
    redis.call('PEXPIRE', hot, 60000)
  end
  return {0, math.max(1, math.floor(wait)), 0, 0}
end
if blocked > now then return deny(blocked - now) end
local log = p .. 'log'
redis.call('ZREMRANGEBYSCORE', log, '-inf', now - span)
local used = redis.call('ZCARD', log)
if used >= burst then
  local idx = used - burst
  local entry = redis.call('ZRANGE', log, idx, idx, 'WITHSCORES')
  return deny(tonumber(entry[2]) + span - now + 1)
end
local day = math.floor(now / 86400000)
local dkey = p .. 'day:' .. day
local dused = tonumber(redis.call('GET', dkey) or '0')
if dused >= daily then return deny((day + 1) * 86400000 - now) end
if is_hot then
  redis.call('ZREM', hot, ARGV[6])
else
  redis.call('ZREMRANGEBYSCORE', hot, '-inf', now - 3000)
  if redis.call('ZCARD', hot) > 0 then return {0, 25, 0, 0} end
end
redis.call('ZADD', log, now, ARGV[7])
redis.call('PEXPIRE', log, span + 1000)
redis.call('INCR', dkey)
redis.call('PEXPIRE', dkey, 90000000)
return {1, 0, burst - used - 1, daily - dused - 1}
"""

# KEYS[1] = key prefix. ARGV: max, remaining, interval ms, daily limit, daily remaining (each ''
# when the header was absent), status, default burst, interval ms, daily, margin ms.
_OBSERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local p = KEYS[1]
local lk = p .. 'limits'
if ARGV[1] ~= '' and tonumber(ARGV[1]) > 0 then redis.call('HSET', lk, 'burst', ARGV[1]) end
if ARGV[3] ~= '' and tonumber(ARGV[3]) > 0 then redis.call('HSET', lk, 'interval', ARGV[3]) end
if ARGV[4] ~= '' and tonumber(ARGV[4]) > 0 then redis.call('HSET', lk, 'daily', ARGV[4]) end
redis.call('PEXPIRE', lk, 172800000)
local lim = redis.call('HMGET', lk, 'burst', 'interval', 'daily')
local burst = tonumber(lim[1]) or tonumber(ARGV[7])
local interval = tonumber(lim[2]) or tonumber(ARGV[8])
local daily = tonumber(lim[3]) or tonumber(ARGV[9])
local span = interval + tonumber(ARGV[10])
local log = p .. 'log'
redis.call('ZREMRANGEBYSCORE', log, '-inf', now - span)
if ARGV[2] ~= '' then
  -- GHL counts fewer left than we do (other traffic on the location): count the difference now.
  local missing = (burst - redis.call('ZCARD', log)) - tonumber(ARGV[2])
  for i = 1, missing do
    redis.call('ZADD', log, now, 'seen:' .. now .. ':' .. i .. ':' .. math.random(1e9))
  end
  redis.call('PEXPIRE', log, span + 1000)
end
local day = math.floor(now / 86400000)
local dkey = p .. 'day:' .. day
if ARGV[5] ~= '' then
  local their_used = daily - tonumber(ARGV[5])
  if their_used > tonumber(redis.call('GET', dkey) or '0') then
    redis.call('SET', dkey, their_used, 'PX', 90000000)
  end
end
if ARGV[6] == '429' then
  redis.call('HSET', lk, 'blocked_until', now + interval)
end
return {burst - redis.call('ZCARD', log), daily - tonumber(redis.call('GET', dkey) or '0')}
"""


@dataclass(frozen=True, slots=True)
class BudgetDefaults:
    """Limits used until GHL's headers say otherwise, and the jitter margin."""

    burst: int = 100
    interval_ms: int = 10_000
    daily: int = 200_000
    margin_ms: int = 250


class GhlBudget:
    """Acquire before every GHL call; observe every answer."""

    def __init__(
        self,
        redis: aioredis.Redis,
        defaults: BudgetDefaults,
        *,
        key_prefix: str = "",
        max_poll_seconds: float = 1.0,
    ) -> None:
        self._redis = redis
        self._defaults = defaults
        self._key_prefix = key_prefix
        self._max_poll = max_poll_seconds
        self._acquire = redis.register_script(_ACQUIRE)
        self._observe = redis.register_script(_OBSERVE)

    def _key(self, location: str) -> str:
        # The hash tag keeps one location's keys on one cluster slot.
        return f"{self._key_prefix}ghl:{{{location}}}:"

    async def acquire(self, location: str, priority: Priority = "standard") -> None:
        """Wait until one request to ``location`` fits the shared budget, then count it."""
        d = self._defaults
        waiter = uuid.uuid4().hex
        while True:
            granted, wait_ms, burst_left, daily_left = await self._acquire(
                keys=[self._key(location)],
                args=[d.burst, d.interval_ms, d.daily, d.margin_ms, priority, waiter, uuid.uuid4().hex],
            )
            if granted:
                GHL_BUDGET_REMAINING.labels(location, "burst").set(int(burst_left))
                GHL_BUDGET_REMAINING.labels(location, "daily").set(int(daily_left))
                return
            # Poll at least every max_poll seconds (hot waiters refresh their place), with jitter
            # so that replicas woken by the same expiry do not all ask in the same millisecond.
            await asyncio.sleep(min(int(wait_ms) / 1000, self._max_poll) + random.uniform(0, 0.005))

    async def observe(self, location: str, headers: Mapping[str, str], status: int) -> None:
        """Follow GHL's X-RateLimit-* headers; after a 429 the location rests one interval."""
        d = self._defaults

        def header(name: str) -> str:
            value = headers.get(name, "")
            return value.strip() if value.strip().isdigit() else ""

        burst_left, daily_left = await self._observe(
            keys=[self._key(location)],
            args=[
                header("x-ratelimit-max"),
                header("x-ratelimit-remaining"),
                header("x-ratelimit-interval-milliseconds"),
                header("x-ratelimit-limit-daily"),
                header("x-ratelimit-daily-remaining"),
                str(status),
                d.burst,
                d.interval_ms,
                d.daily,
                d.margin_ms,
            ],
        )
        GHL_BUDGET_REMAINING.labels(location, "burst").set(int(burst_left))
        GHL_BUDGET_REMAINING.labels(location, "daily").set(int(daily_left))
